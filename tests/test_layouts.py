"""Every release layout reads to the same manifest for the same sample; every bad file gets one
clear message and loses nothing else; the parsers read or refuse any input with their own error."""
from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migue.extractors.skeleton_layouts import IMIGUE22
from migue.pipeline.cli import main
from migue.pipeline.datasets import detect_layout, read_dataset
from migue.pipeline.datasets.common import split_by_subject
from migue.pipeline.datasets.labels import LabelError, parse_clip_row, read_clip_labels
from migue.pipeline.datasets.stgcn_pack import PackError, load_label_pickle
from migue.pipeline.extraction.inputs import InputConfig, pose_clip
from migue.pipeline.datasets.skeleton import (
    JOINT_INDEX, LIGHT_HAND_POINTS, SkeletonError, _table_to_array, light_hand_rows_to_array, load_skeleton,
    read_openpose_frame, read_skeleton,
)
from migue.synth.sample import write_sample

from conftest import clone

# MIGUE_FUZZ_EXAMPLES=5000 for a deeper run than the fast default.
FUZZ = settings(max_examples=int(os.environ.get("MIGUE_FUZZ_EXAMPLES", "150")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def layouts(release_layouts) -> dict[str, Path]:
    """The session's release-layout tree (conftest.py), read-only: tests that damage it clone it."""
    return release_layouts


@pytest.fixture(scope="module")
def manifests(layouts):
    return {name: read_dataset(path, "stgcn" if name == "stgcn-labelled" else "auto")
            for name, path in layouts.items()}


def mg(manifest, split: bool = True) -> list[tuple]:
    return sorted((u.unit_id, u.video_id, u.start, u.end, u.mg_label, u.emotion) + ((u.split,) if split else ())
                  for u in manifest.of_kind("mg"))


def ids(manifest) -> set[str]:
    return {u.unit_id for u in manifest.units}


# ---------------------------------------------------------------- the same sample in every layout

def test_every_layout_is_detected(layouts):
    for name, path in layouts.items():
        assert detect_layout(path)[0] == name.removesuffix("-labelled"), name


@pytest.mark.parametrize("layout", ["miga2023", "openpose-json"])
def test_miga_layouts_read_to_the_same_manifest(manifests, layout):
    ref, m = manifests["miga2025"], manifests[layout]
    assert m.layout == layout and not m.problems and not m.notes
    assert mg(m) == mg(ref) and len(mg(ref)) == 144
    assert sorted(u.unit_id for u in m.of_kind("window")) == sorted(u.unit_id for u in ref.of_kind("window"))
    for vid, video in ref.videos.items():
        other = m.videos[vid]
        assert (other.split, other.emotion, other.frames, other.width, other.height) == \
               (video.split, video.emotion, video.frames, video.width, video.height)


def test_full_release_same_clips_with_a_cross_subject_split(manifests):
    ref, m = manifests["miga2025"], manifests["imigue"]
    assert m.layout == "imigue" and not m.problems
    assert mg(m, split=False) == mg(ref, split=False)
    assert ids(m) == ids(ref)
    subjects: dict[str, set[str]] = {}
    for unit in m.units:
        subjects.setdefault(unit.subject, set()).add(unit.split)
        assert unit.split == m.videos[unit.video_id].split
    assert all(len(splits) == 1 for splits in subjects.values()), "a subject in two splits"
    assert {v.split for v in m.videos.values()} == {"train", "val", "test"}
    assert len(subjects) < len(m.videos), "the sample has subjects with two videos"
    assert read_dataset(m.root).units == m.units, "the split is deterministic"


def test_stgcn_packs_hold_the_same_clips(manifests):
    ref, m = manifests["miga2025"], manifests["stgcn"]
    assert m.layout == "stgcn" and not m.problems
    assert any("pose units only" in note for note in m.notes)
    def clips(manifest):
        units = sorted(manifest.of_kind("mg"), key=lambda u: (u.video_id, u.start))
        return [(u.video_id, u.mg_label, u.split, u.emotion) for u in units]
    assert clips(m) == clips(ref)
    assert not m.of_kind("window")
    unit = min(m.of_kind("mg"), key=lambda u: (int(u.video_id), u.start))
    assert unit.unit_id == f"{unit.video_id}:clip0", "without label files: virtual clip ids"


def test_stgcn_packs_beside_label_files_get_the_same_unit_ids(manifests):
    ref, m = manifests["miga2025"], manifests["stgcn-labelled"]
    assert not m.problems
    assert mg(m) == mg(ref)
    for vid, video in ref.videos.items():
        assert (m.videos[vid].width, m.videos[vid].height) == (video.width, video.height)


def test_keypoints_agree_across_formats(manifests):
    ref = read_skeleton(manifests["miga2025"].videos["0001"].skeleton_path)
    assert ref.shape == (260, 137, 3)
    np.testing.assert_array_equal(read_skeleton(manifests["openpose-json"].videos["0001"].skeleton_path), ref)
    np.testing.assert_array_equal(read_skeleton(manifests["imigue"].videos["0001"].skeleton_path), ref)
    light = read_skeleton(manifests["miga2023"].videos["0001"].skeleton_path)
    np.testing.assert_array_equal(light[:, LIGHT_HAND_POINTS], ref[:, LIGHT_HAND_POINTS])
    others = np.setdiff1d(np.arange(137), LIGHT_HAND_POINTS)
    assert not light[:, others].any(), "points a light-hand row does not have are missing"
    pack = read_skeleton(manifests["stgcn-labelled"].videos["0001"].skeleton_path)
    points = [JOINT_INDEX[j] for j in IMIGUE22.joints]
    clips = [u for u in manifests["stgcn-labelled"].of_kind("mg") if u.video_id == "0001"]
    assert len(pack) == max(u.end for u in clips) + 1
    inside = np.zeros(len(pack), bool)
    for unit in clips:
        inside[unit.start:unit.end + 1] = True
    np.testing.assert_array_equal(pack[inside][:, points], ref[:len(pack)][inside][:, points])
    assert not pack[~inside].any()


@pytest.mark.parametrize("layout", ["imigue", "miga2023", "openpose-json", "stgcn-labelled"])
def test_pose_inputs_are_the_same_in_every_layout(manifests, layout):
    ref, m = manifests["miga2025"], manifests[layout]
    cfg = InputConfig(frames=16, joints=IMIGUE22.joints)
    by_id = {u.unit_id: u for u in m.of_kind("mg")}
    for unit in sorted(ref.of_kind("mg"), key=lambda u: u.unit_id)[::29]:
        other = by_id[unit.unit_id]
        np.testing.assert_array_equal(pose_clip(other, m.videos[other.video_id], cfg, None),
                                      pose_clip(unit, ref.videos[unit.video_id], cfg, None))


def test_skeleton_only_release_is_pose_only_at_the_processing_size(tmp_path):
    write_sample(tmp_path, videos=8, frames=330, clips_per_video=16, seed=2, layout="miga2023", rgb=False)
    m = read_dataset(tmp_path)
    assert not m.problems and any("pose units only" in n for n in m.notes)
    assert len(m.of_kind("mg")) == 128 and not m.of_kind("window")
    for video in m.videos.values():
        assert video.video_path is None and video.frames == 330
        assert (video.width, video.height) == (1280, 720), "smallest processing size holding the points"


def test_cross_subject_split_is_60_20_20_and_stable():
    subjects = [f"P{i:02d}" for i in range(72)]
    split = split_by_subject(subjects)
    counts = {s: sum(v == s for v in split.values()) for s in ("train", "val", "test")}
    assert counts == {"train": 43, "val": 14, "test": 15}
    assert split_by_subject(list(reversed(subjects))) == split
    grown = split_by_subject(subjects + ["P99"])
    assert sum(grown[s] != split[s] for s in subjects) <= 2, "a new subject moves (almost) no other one"
    assert set(split_by_subject(["a", "b", "c"]).values()) == {"train", "val", "test"}


# ---------------------------------------------------------------- bad input: one message, nothing else lost

@pytest.fixture()
def miga2023(layouts, tmp_path):
    return clone(layouts["miga2023"], tmp_path / "miga2023")


@pytest.fixture()
def release(layouts, tmp_path):
    return clone(layouts["imigue"], tmp_path / "imigue")


def read_bad(root: Path, **kwargs):
    """The manifest of a damaged copy, read as `migue data check` reads it."""
    return read_dataset(root, read_skeletons=True, **kwargs)


def skeleton_csv(root: Path, vid: str) -> Path:
    return next(root.glob(f"**/imigue_skeleton_*/{vid}/{vid}_light_hand.csv"))


def test_clean_copies_have_no_problems(miga2023, release, manifests):
    assert not read_bad(miga2023).problems
    assert not read_bad(release).problems


def empty_sheet(path: Path) -> None:
    from migue.synth.sample import _write_xlsx

    _write_xlsx(path, np.zeros((0, 411)))


@pytest.mark.parametrize("layout, empty", [
    ("miga2023", lambda path: path.write_text("")),
    ("miga2025", lambda path: path.write_bytes(b"")),
    ("miga2025", empty_sheet),
])
def test_empty_skeleton_reads_and_fails_only_at_pose_extraction(layouts, manifests, tmp_path, layout, empty):
    from migue.pipeline.extraction.unit_inputs import parse_skeletons

    root = clone(layouts[layout], tmp_path / layout)
    path = next(p for p in root.glob("**/imigue_skeleton_*/0004/0004_*") if not p.name.endswith("_label.csv"))
    empty(path)
    m = read_bad(root)
    assert not m.problems and ids(m) == ids(manifests[layout])
    assert [n for n in m.notes if "no skeleton frames" in n] == [
        f"{path}: no skeleton frames (empty file, as two of the real release); "
        "its units will fail pose extraction"]
    failures: dict[str, str] = {}
    kept = parse_skeletons(m.of_kind("mg"), m.videos, tmp_path / "parsed", failures)
    assert set(failures) == {u.unit_id for u in m.of_kind("mg") if u.video_id == "0004"}
    assert all("no skeleton frames" in reason for reason in failures.values())
    assert len(kept) == len(m.of_kind("mg")) - len(failures)


@pytest.mark.parametrize("damage, message", [
    (lambda lines: lines[:4] + [lines[4].rsplit(",", 1)[0]] + lines[5:],
     "row 5 has 105 columns, expected 106 (frame index + 35 keypoints x (x, y, confidence))"),
    (lambda lines: lines[:2] + [lines[2].replace(",", ",abc,", 1).rsplit(",", 1)[0]] + lines[3:],
     "row 3, column 2 is not a number ('abc')"),
    (lambda lines: lines[:6] + [lines[6].replace(",", ",nan,", 1).rsplit(",", 1)[0]] + lines[7:],
     "row 7, column 2 is nan (not a finite number)"),
])
def test_bad_skeleton_table_is_one_problem(miga2023, manifests, damage, message):
    path = skeleton_csv(miga2023, "0004")
    path.write_text("\n".join(damage(path.read_text().splitlines())) + "\n")
    m = read_bad(miga2023)
    assert m.problems == [f"{path}: {message} (its units will fail pose extraction)"]
    assert ids(m) == ids(manifests["miga2023"]), "the units stay: they fail at extraction, with that reason"
    with pytest.raises(SkeletonError, match=re.escape(message)):
        load_skeleton(path, None)


def test_bad_openpose_json_frame_is_one_problem(layouts, manifests, tmp_path):
    root = clone(layouts["openpose-json"], tmp_path / "json")
    frame = next(root.glob("**/imigue_skeleton_*/0005/openpose_json/0005_000000000007_keypoints.json"))
    data = json.loads(frame.read_text())
    data["people"][0]["pose_keypoints_2d"][4] = float("nan")
    frame.write_text(json.dumps(data))
    m = read_bad(root)
    assert m.problems == [f"{frame}: people[0].pose_keypoints_2d[4] is nan (not a finite number) "
                          "(its units will fail pose extraction)"]
    assert ids(m) == ids(manifests["openpose-json"])


def test_bad_label_rows_each_named_once_and_the_rest_read(miga2023, manifests):
    path = next(miga2023.glob("**/imigue_skeleton_*/0006/0006_label.csv"))
    rows = path.read_text().splitlines()
    first = rows[0]
    path.write_text("\n".join(rows + ["77,10,20", "3,50,40", "3,250,300", "x,1,2", "3,1", first]) + "\n")
    n = len(rows)
    m = read_bad(miga2023)
    assert m.problems == [
        f"{path}: row {n + 1}: unknown class 77 (expected 1..31 or 99)",
        f"{path}: row {n + 2}: start frame 50 is after end frame 40",
        f"{path}: row {n + 3}: end frame 300 is past the video's last frame 259",
        f"{path}: row {n + 4}: class 'x' is not an integer",
        f"{path}: row {n + 5}: has 2 columns, expected 3 (class,start,end)",
        f"{path}: row {n + 6}: duplicate clip {next(iter(_row_ids(m, '0006')))} (same video and frame range as "
        f"{path}: row 1); kept the first",
    ]
    assert ids(m) == ids(manifests["miga2023"])


def _row_ids(m, vid):
    return [u.unit_id for u in sorted(m.of_kind("mg"), key=lambda u: u.start) if u.video_id == vid][:1]


def test_missing_and_undecodable_videos_are_named(release, manifests):
    (release / "videos" / "0003.mp4").unlink()
    (release / "videos" / "0005.mp4").unlink()
    (release / "videos" / "0005.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video at all")
    m = read_bad(release)
    assert len(m.problems) == 2
    assert m.problems[0].startswith(f"{release / 'labels.csv'}: video 0003.mp4 (rows ")
    assert m.problems[0].endswith(f"not found under {release}")
    assert m.problems[1].startswith(f"{release / 'videos' / '0005.mp4'}: cannot open video")
    assert m.problems[1].endswith("(its units are left without video)")
    ref = manifests["imigue"]
    assert mg(m) == mg(ref), "their clips stay (pose still works); rgb units fail at extraction"
    windows = {u.unit_id for u in ref.of_kind("window") if u.video_id not in ("0003", "0005")}
    assert {u.unit_id for u in m.of_kind("window")} == windows
    assert m.videos["0003"].video_path is None and m.videos["0005"].video_path is None
    assert m.videos["0003"].frames == 260, "frame count from the skeleton"


def test_bad_release_table_rows(release, manifests):
    path = release / "labels.csv"
    lines = path.read_text().splitlines()
    n = len(lines)
    video, _, _, _, result, subject = lines[1].split(",")
    path.write_text("\n".join(lines + [
        f"{video},3,10,20,{result}",                  # a column short
        f"{video},3,10,20,maybe,{subject}",           # unknown win_or_lose
        f"{video},3,10,20,{result},P77",              # another subject for the video
        f"{video},99,30,300,{result},{subject}",      # past the last frame
        lines[1],                                     # the first clip again
    ]) + "\n")
    m = read_bad(release)
    assert m.problems[0] == f"{path}: row {n + 1}: has 5 columns, expected 6 (as the header)"
    assert m.problems[1] == f"{path}: row {n + 2}: emotion label 'maybe' is not win/lose or 1/0"
    assert m.problems[2] == (f"{path}: row {n + 3}: video {video} has subject P77 here but {subject} in "
                             "row 2; the clip is skipped")
    assert m.problems[3] == f"{path}: row {n + 4}: end frame 300 is past the video's last frame 259"
    assert m.problems[4].startswith(f"{path}: row {n + 5}: duplicate clip {video}:")
    assert len(m.problems) == 5
    assert ids(m) == ids(manifests["imigue"])


def test_release_table_without_its_columns(release):
    (release / "labels.csv").write_text("video,label\n1,3\n")
    m = read_bad(release)
    assert m.problems == [f"{release / 'labels.csv'}: row 1: header lacks column(s) video_id, class, "
                          "start_frame, end_frame, win_or_lose, subject_id (expected video_id,class,"
                          "start_frame,end_frame,win_or_lose,subject_id, got video,label)"]
    assert not m.units


def test_missing_label_and_skeleton_files(miga2023, manifests):
    labels = next(miga2023.glob("**/imigue_skeleton_train/*/*_label.csv"))
    labels.unlink()
    skeleton = skeleton_csv(miga2023, "0002")
    skeleton.unlink()
    m = read_bad(miga2023)
    assert sorted(m.problems) == sorted([
        f"{labels}: label file missing",
        f"{skeleton.parent}: skeleton file missing (expected 0002_light_hand.csv)"])
    lost = {u.unit_id for u in manifests["miga2023"].of_kind("mg") if u.video_id == labels.parent.name}
    assert ids(m) == ids(manifests["miga2023"]) - lost


def test_bad_emotion_rows(miga2023, manifests):
    path = next(miga2023.glob("**/train_label.csv"))
    path.write_text(path.read_text() + "99,maybe\n,1\n")
    m = read_bad(miga2023)
    rows = len(path.read_text().splitlines())
    assert m.problems == [f"{path}: row {rows - 1}: emotion label 'maybe' is not win/lose or 1/0",
                          f"{path}: row {rows}: expected video_id,label, got ,1"]
    assert mg(m) == mg(manifests["miga2023"])


# ---------------------------------------------------------------- ST-GCN packs

def write_pack(folder: Path, part: str, names: list, labels: list, data: np.ndarray | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = np.zeros((len(names), 3, 90, 22, 1), np.float32)
        data[:, 0] += 300.0
        data[:, 2] += 0.9
    np.save(folder / f"{part}_data.npy", data)
    with open(folder / f"{part}_label.pkl", "wb") as f:
        pickle.dump((names, labels), f)


def test_pack_problems_are_named_and_the_rest_is_read(tmp_path):
    write_pack(tmp_path, "train", ["1_0", "1_1", "bad", "2_0", "1_1", "3_0"], [0, 31, 2, 40, 5, 7])
    write_pack(tmp_path, "val", ["4_0"], [3])
    m = read_dataset(tmp_path)
    label = tmp_path / "train_label.pkl"
    assert m.problems == [
        f"{label}: item 2: name 'bad' is not '<video id>_<k>'",
        f"{label}: item 3 ('2_0'): label 40 is not a class index 0..31",
        f"{label}: item 4: duplicate name '1_1' (also item 1); kept the first",
    ]
    assert sorted((u.unit_id, u.mg_label, u.split) for u in m.of_kind("mg")) == [
        ("1:clip0", 0, "train"), ("1:clip1", 31, "train"), ("3:clip0", 7, "train"), ("4:clip0", 3, "val")]
    assert (m.videos["1"].width, m.videos["1"].height) == (1280, 720)


def test_pack_clips_keep_their_last_90_frames_at_their_place(tmp_path):
    data = np.zeros((2, 3, 90, 22, 1), np.float32)
    data[:, 0] = np.arange(1, 91, dtype=np.float32)[None, :, None, None]  # x = 1..90 per kept frame
    data[:, 2] = 0.8
    data[1, :, 30:] = 0  # the short clip: 30 frames, zero-padded
    write_pack(tmp_path, "train", ["7_0", "7_1"], [4, 9], data)
    (tmp_path / "imigue_skeleton_train" / "7").mkdir(parents=True)
    (tmp_path / "imigue_skeleton_train" / "7" / "7_label.csv").write_text("5,100,299\n10,400,429\n")
    m = read_dataset(tmp_path)
    assert not m.problems
    assert sorted((u.unit_id, u.mg_label) for u in m.of_kind("mg")) == [("7:000100-000299", 4),
                                                                         ("7:000400-000429", 9)]
    keypoints = read_skeleton(m.videos["7"].skeleton_path)
    nose = keypoints[:, JOINT_INDEX["Nose"]]
    assert len(keypoints) == 430
    assert not nose[:210].any() and (nose[210:300, 0] == np.arange(1, 91)).all(), "the last 90 of 200"
    assert (nose[400:430, 0] == np.arange(1, 31)).all() and not nose[300:400].any()


def test_pack_label_mismatch_falls_back_to_the_virtual_timeline(tmp_path):
    write_pack(tmp_path, "train", ["7_0"], [4])
    (tmp_path / "7_label.csv").write_text("6,100,150\n")
    m = read_dataset(tmp_path, "stgcn")
    assert m.problems == [f"{tmp_path / 'train_label.pkl'}: item 0 ('7_0', class index 4): row 1 of "
                          f"{tmp_path / '7_label.csv'} has class index 5; the video's clips are placed on a "
                          "virtual timeline"]
    assert [u.unit_id for u in m.units] == ["7:clip0"]


class Evil:
    def __reduce__(self):
        return (os.system, ("echo owned",))


def test_label_pickle_with_code_is_refused_and_other_packs_still_read(tmp_path):
    write_pack(tmp_path, "val", ["4_0"], [3])
    write_pack(tmp_path, "train", ["1_0"], [0])
    with open(tmp_path / "train_label.pkl", "wb") as f:
        pickle.dump((["1_0"], [Evil()]), f)
    m = read_dataset(tmp_path)
    assert len(m.problems) == 1
    assert m.problems[0].startswith(f"{tmp_path / 'train_label.pkl'}: refused to unpickle posix.system")
    assert [u.unit_id for u in m.units] == ["4:clip0"]


def test_label_pickle_may_hold_numpy_arrays(tmp_path):
    path = tmp_path / "x_label.pkl"
    with open(path, "wb") as f:
        pickle.dump((np.array(["1_0", "1_1"]), np.array([3, 99 % 32])), f, protocol=2)
    names, labels = load_label_pickle(path)
    assert list(names) == ["1_0", "1_1"] and [int(x) for x in labels] == [3, 3]


def test_pack_with_a_wrong_shape_is_refused(tmp_path):
    write_pack(tmp_path, "train", ["1_0"], [0], np.zeros((1, 3, 90, 25, 1), np.float32))
    m = read_dataset(tmp_path)
    assert m.problems == [f"{tmp_path / 'train_data.npy'}: shape (1, 3, 90, 25, 1), expected (N, 3, T, 22, M) "
                          "(clips, x/y/confidence, frames, joints, persons) (the pack is not read)"]


# ---------------------------------------------------------------- the command line

def test_data_check_reports_and_exits_non_zero_on_problems(miga2023, tmp_path):
    runner = CliRunner()
    ok = runner.invoke(main, ["data", "check", str(miga2023), "--cache", str(tmp_path / "cache")])
    assert ok.exit_code == 0, ok.output
    assert "layout miga2023" in ok.output and "MG clips" in ok.output
    counts = {line.split()[0]: line.split()[4] for line in ok.output.splitlines()
              if line.split()[:1] in (["train"], ["val"], ["test"]) and len(line.split()) == 6}
    assert sum(map(int, counts.values())) == 144, ok.output
    assert "emotion labels: train win" in ok.output
    skeleton_csv(miga2023, "0004").write_text("1,2,3\n")
    bad = runner.invoke(main, ["data", "check", str(miga2023), "--cache", str(tmp_path / "cache")])
    assert bad.exit_code == 1
    assert "1 problem(s):" in bad.output and "row 1 has 3 columns, expected 106" in bad.output
    assert list((tmp_path / "cache" / "parsed").glob("*.npy")), "parsed skeletons are kept for extract"


def test_cli_synth_layout_and_extract_layout_options(tmp_path):
    runner = CliRunner()
    out = runner.invoke(main, ["synth", "--out", str(tmp_path / "s"), "--videos", "8", "--frames", "330",
                               "--layout", "stgcn"])
    assert out.exit_code != 0 and "at least" in out.output, "8 videos of 12 clips cannot cover 32 classes"
    out = runner.invoke(main, ["synth", "--out", str(tmp_path / "s"), "--videos", "15", "--frames", "300",
                               "--layout", "stgcn"])
    assert out.exit_code == 0, out.output
    assert detect_layout(tmp_path / "s") == ["stgcn"]
    help_text = runner.invoke(main, ["extract", "--help"]).output
    assert "--layout" in help_text and "--joints" in help_text and "openpose-json" in help_text


# ---------------------------------------------------------------- fuzzing: read, or refuse clearly

cells = st.one_of(st.text(max_size=6), st.integers(-10 ** 5, 10 ** 5).map(str),
                  st.sampled_from(["99", "1", "31", "32", "0", "-1", "", " 3 ", "1e999", "nan", "2.0", "2.5",
                                   "1_0", "inf", "9" * 5000]))


@FUZZ
@given(st.lists(cells, max_size=5), st.one_of(st.none(), st.integers(0, 10 ** 6)))
def test_fuzz_label_row(row, n_frames):
    try:
        label, start, end = parse_clip_row(row, n_frames)
    except LabelError:
        return
    assert 0 <= label < 32 and 0 <= start <= end
    assert n_frames is None or end < n_frames


@FUZZ
@given(st.text(max_size=300))
def test_fuzz_label_file(text):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "1_label.csv"
        path.write_text(text)
        problems: list[str] = []
        for clip in read_clip_labels(path, 500, problems):
            assert 0 <= clip.mg_label < 32 and 0 <= clip.start <= clip.end < 500
        assert all(p.startswith(str(path)) for p in problems)


any_cell = st.one_of(st.floats(), st.integers(-10 ** 400, 10 ** 400), st.text(max_size=4), st.none(),
                     st.booleans(), st.floats(allow_nan=False).map(repr))


@st.composite
def tables(draw, width: int, cell=any_cell):
    rows = []
    for _ in range(draw(st.integers(0, 3))):
        n = draw(st.sampled_from([width, width, width, width - 1, width + 1, 0]))
        row: list[object] = [draw(st.sampled_from([0.0, 1.5, 12.25]))] * n
        for j, value in draw(st.lists(st.tuples(st.integers(0, width), cell), max_size=3)):
            if j < n:
                row[j] = value
        rows.append(row)
    return rows


@FUZZ
@given(tables(411))
def test_fuzz_skeleton_table(rows):
    try:
        out = _table_to_array(rows, Path("x_openpose.xlsx"))
    except SkeletonError as exc:
        assert str(exc).startswith("x_openpose.xlsx: ")
        return
    assert out.shape == (len(rows), 137, 3) and out.dtype == np.float32 and np.isfinite(out).all()


@FUZZ
@given(tables(106, st.one_of(st.text(max_size=5), st.floats().map(repr), st.integers().map(str))))
def test_fuzz_light_hand_rows(rows):
    rows = [[c if isinstance(c, str) else repr(c) for c in row] for row in rows]
    try:
        out = light_hand_rows_to_array(rows, Path("x_light_hand.csv"))
    except SkeletonError as exc:
        assert str(exc).startswith("x_light_hand.csv: ")
        return
    assert out.shape[1:] == (137, 3) and np.isfinite(out).all()
    assert not out[:, np.setdiff1d(np.arange(137), LIGHT_HAND_POINTS)].any()


json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 40, 10 ** 40), st.floats(), st.text(max_size=3))
json_value = st.recursive(json_scalar, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=8)


@st.composite
def openpose_frames(draw):
    """Mostly well-formed frames with a few damaged values, lengths or types."""
    people = []
    for _ in range(draw(st.integers(0, 3))):
        person: dict[str, object] = {}
        for key, n in (("pose_keypoints_2d", 75), ("face_keypoints_2d", 210),
                       ("hand_left_keypoints_2d", 63), ("hand_right_keypoints_2d", 63)):
            size = draw(st.sampled_from([n, n, n, 0, n - 1]))
            values: list[object] = [draw(st.floats(0, 2000, allow_nan=False))] * size
            for j, v in draw(st.lists(st.tuples(st.integers(0, n), json_scalar), max_size=2)):
                if j < size:
                    values[j] = v
            person[key] = draw(st.sampled_from([values, values, values, None, "x"]))
        people.append(draw(st.sampled_from([person, person, person, [], 3])))
    frame = draw(st.sampled_from([{"version": 1.3, "people": people}, {"people": people},
                                  {"version": 1.3}, people]))
    return json.dumps(frame)


@FUZZ
@given(st.one_of(openpose_frames(), json_value.map(json.dumps), st.text(max_size=40), st.binary(max_size=40)))
def test_fuzz_openpose_json(text):
    try:
        out = read_openpose_frame(text, Path("x_000000000000_keypoints.json"))
    except SkeletonError as exc:
        assert str(exc).startswith("x_000000000000_keypoints.json: ")
        return
    assert out is None or (out.shape == (137, 3) and np.isfinite(out).all())


pickled = st.recursive(st.one_of(st.none(), st.integers(), st.text(max_size=4), st.floats(), st.binary(max_size=4)),
                       lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner)
                       | st.dictionaries(st.text(max_size=2), inner, max_size=2), max_leaves=6)


@FUZZ
@given(st.one_of(pickled.map(pickle.dumps), st.binary(max_size=60)))
def test_fuzz_label_pickle(data):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "train_label.pkl"
        path.write_bytes(data)
        try:
            names, labels = load_label_pickle(path)
        except PackError as exc:
            assert str(exc).startswith(str(path))
            return
        assert len(names) == len(labels)
