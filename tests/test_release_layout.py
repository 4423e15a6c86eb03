"""The release as it unpacks, read from one folder or several; `migue data check` never silently
empty; test label files as released (no class, or a placeholder) read as unlabelled clips."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from migue.pipeline.cli import main
from migue.pipeline.datasets import detect_layout, read_dataset

VALIDATE = "imigue_data_phase1/datasets/imigue_skeleton_validate"
TRAIN = "imigue_data_phase1/datasets/imigue_skeleton_train"
TEST = "imigue_data_phase2/imigue_skeleton_test"


def copy_of(sample_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(sample_dir, tmp_path / "release"))


def check(*roots: Path, cache: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["data", "check", *map(str, roots), "--cache", str(cache)])
    return result.exit_code, result.output


def test_data_check_reports_every_split(sample_dir, manifest, tmp_path):
    code, out = check(sample_dir, cache=tmp_path / "cache")
    assert code == 0, out
    assert "split  videos  with video  with skeleton  MG clips  emotion windows" in out
    for split in ("train", "val", "test"):
        videos = [v for v in manifest.videos.values() if v.split == split]
        clips = sum(u.split == split and u.kind == "mg" for u in manifest.units)
        windows = sum(u.split == split and u.kind == "window" for u in manifest.units)
        n = len(videos)
        assert n > 0 and clips > 0 and windows > 0
        assert any(line.split() == [split, str(n), str(n), str(n), str(clips), str(windows)]
                   for line in out.splitlines()), (split, out)
    assert f"1 other files (.txt): {sample_dir / 'README.txt'}" in out, "what no reader used is listed"


def test_a_split_moved_out_of_reach_is_a_problem(sample_dir, tmp_path):
    root = copy_of(sample_dir, tmp_path)
    (root / VALIDATE).rename(root / "imigue_data_phase1" / "validate_backup")
    code, out = check(root, cache=tmp_path / "cache")
    assert code == 1  # its RGB videos are still there, matching no skeleton folder (issue 23, case 13:
    # a split with no files at all is only a note, see test_data_splits.py)
    assert "the val split is empty" not in out
    assert (f"no val split: the miga2025 reader looked for imigue_skeleton_validate/<id>/ folders "
            f"(at any depth) under {root} and found none") in out
    assert "video file(s) match no skeleton folder" in out and "imigue_rgb_phase1/validation_data" in out
    assert "OpenPose sheets (_openpose.xlsx)" in out and "validate_backup" in out, "the unread files are named"


def test_extract_refuses_an_empty_train_split(sample_dir, tmp_path):
    root = copy_of(sample_dir, tmp_path)
    (root / TRAIN).rename(root / "imigue_data_phase1" / "train_backup")
    result = CliRunner().invoke(main, ["extract", "--modality", "pose", "--data", str(root),
                                       "--cache", str(tmp_path / "cache")])
    assert result.exit_code != 0
    assert "the train split is empty" in result.output and "nothing to train on" in result.output
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").glob("pose-*"))


def test_an_empty_split_folder_is_a_problem(sample_dir, tmp_path):
    root = copy_of(sample_dir, tmp_path)
    for folder in (root / TEST).iterdir():
        shutil.rmtree(folder)
    m = read_dataset(root)
    assert f"{root / TEST}: no video folders (<id>/) in this test split folder" in m.problems
    assert any("match no skeleton folder" in p and "imigue_rgb_phase2" in p for p in m.problems)


def test_several_roots_are_one_dataset(sample_dir, manifest, tmp_path):
    roots = [sample_dir / name for name in ("imigue_data_phase1", "imigue_data_phase2", "imigue_rgb_phase1",
                                            "imigue_rgb_phase2")]
    assert detect_layout(roots)[0] == "miga2025"
    got = read_dataset(roots)
    assert got.problems == []
    assert sorted(got.units, key=str) == sorted(manifest.units, key=str)
    code, out = check(*roots, cache=tmp_path / "cache")
    assert code == 0, out
    assert out.splitlines()[0].startswith(f"dataset {roots[0]}, {roots[1]}")
    assert "every file found under the dataset folder(s) was read" in out


def test_ids_match_with_or_without_zeros_and_keep_the_release_spelling(sample_dir, tmp_path):
    root = copy_of(sample_dir, tmp_path)
    video = next((root / "imigue_rgb_phase1" / "train_data").iterdir())  # e.g. 0003/0003.mp4
    short = video.name.lstrip("0")
    (video / f"{video.name}.mp4").rename(video / f"{short}.mp4")
    video.rename(video.with_name(short))
    m = read_dataset(root)
    assert m.problems == []
    assert m.videos[video.name].video_path.name == f"{short}.mp4"
    assert {u.video_name for u in m.units if u.video_id == video.name} == {video.name}


def test_units_carry_their_label_file_row(manifest, sample_dir):
    for label_file in sample_dir.glob("**/imigue_skeleton_*/*/*_label.csv"):
        vid = label_file.parent.name
        rows = [tuple(map(int, r)) for r in csv.reader(label_file.open()) if r]
        clips = sorted((u for u in manifest.of_kind("mg") if u.video_id == vid), key=lambda u: u.label_row)
        assert [u.label_row for u in clips] == list(range(len(rows)))
        assert [(u.start, u.end) for u in clips] == [(s, e) for _, s, e in rows]
        assert {u.video_name for u in clips} == {vid}
    assert all(u.label_row == -1 for u in manifest.of_kind("window"))


@pytest.mark.parametrize("form, rewrite", [
    ("start,end", lambda c, s, e: f"{s},{e}"),
    ("placeholder class '-1'", lambda c, s, e: f"-1,{s},{e}"),
    ("placeholder class '?'", lambda c, s, e: f"?,{s},{e}"),
])
def test_test_labels_without_classes_are_unlabelled_clips(form, rewrite, sample_dir, manifest, tmp_path):
    root = copy_of(sample_dir, tmp_path)
    for path in (root / TEST).glob("*/*_label.csv"):
        rows = [r for r in csv.reader(path.open()) if r]
        path.write_text("".join(rewrite(*r) + "\n" for r in rows))
    m = read_dataset(root)
    assert m.problems == []
    want = sorted((u.unit_id, u.label_row) for u in manifest.of_kind("mg") if u.split == "test")
    got = [u for u in m.of_kind("mg") if u.split == "test"]
    assert sorted((u.unit_id, u.label_row) for u in got) == want, "every test clip is kept"
    assert {u.mg_label for u in got} == {-1}
    assert any(form in note and "read as unlabelled MG clips" in note for note in m.notes), m.notes


def test_a_placeholder_class_outside_test_is_still_a_problem(sample_dir, tmp_path):
    root = copy_of(sample_dir, tmp_path)
    path = next((root / TRAIN).glob("*/*_label.csv"))
    path.write_text("-1,0,20\n")
    m = read_dataset(root)
    assert f"{path}: row 1: unknown class -1 (expected 1..31 or 99)" in m.problems


def test_detection_only_lists_folders(sample_dir, monkeypatch):
    import av

    def no_open(*args, **kwargs):
        raise AssertionError("a video was opened to detect the layout")

    monkeypatch.setattr(av, "open", no_open)
    monkeypatch.setattr("builtins.open", no_open)
    assert detect_layout(sample_dir)[0] == "miga2025"
