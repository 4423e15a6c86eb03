"""Tests of the synthetic iMiGUE sample writer (migue.synth)."""
from __future__ import annotations

import csv
import functools
import itertools
import shutil
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest
from python_calamine import CalamineWorkbook

from migue.pipeline.datasets.classes import (
    MG_CLASS_NAMES, N_MG_CLASSES, index_to_raw_label, raw_label_to_index,
)
from migue.pipeline.datasets.openpose import FACE_SLICE, KEYPOINT_INDEX, LHAND_SLICE, N_COLUMNS, RHAND_SLICE
from migue.synth.sample import EMOTION_DIRS, EMOTION_FILES, RGB_DIRS, SKELETON_DIRS, SPLITS, SynthSummary, write_sample

# The smallest sample that still gives every class 2 train clips and 1 validate
# and test clip: 4 + 2 + 2 videos of 16 clips (16 x 16 frames + 17 gaps of 4).
SMALL = dict(videos=8, frames=330, clips_per_video=16)
RAW_LABELS = set(range(1, 32)) | {99}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    return write_sample(tmp_path_factory.mktemp("sample"), seed=3, **SMALL)


def split_of(s: SynthSummary, video_id: str) -> str:
    return next(split for split, ids in s.splits.items() if video_id in ids)


def skeleton_dir(s: SynthSummary, video_id: str) -> Path:
    return s.out / SKELETON_DIRS[split_of(s, video_id)] / video_id


@functools.cache
def _parse_sheet(path: Path) -> np.ndarray:
    rows = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python()
    assert all(isinstance(v, float) for v in rows[0]), "first row must be data, not a header"
    return np.array(rows, dtype=float)


def read_sheet(s: SynthSummary, video_id: str) -> np.ndarray:
    return _parse_sheet(skeleton_dir(s, video_id) / f"{video_id}_openpose.xlsx")


def read_labels(s: SynthSummary, video_id: str) -> np.ndarray:
    path = skeleton_dir(s, video_id) / f"{video_id}_label.csv"
    return np.loadtxt(path, delimiter=",", dtype=int, ndmin=2)


def read_video(s: SynthSummary, video_id: str, frames: int | None = None,
               rgb: bool = True) -> np.ndarray:
    """Decoded frames, all or the first `frames`: (T, H, W, 3) RGB, or the raw yuv420p planes."""
    path = s.out / RGB_DIRS[split_of(s, video_id)] / video_id / f"{video_id}.mp4"
    with av.open(str(path)) as container:
        decoded = itertools.islice(container.decode(video=0), frames)
        return np.stack([f.to_ndarray(format="rgb24") if rgb else f.to_ndarray() for f in decoded])


def read_emotions(path: Path) -> dict[str, int]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["video_id", "label"]
    return {video_id: int(label) for video_id, label in rows[1:]}


def points(sheet: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, 2) x, y and (T,) confidence of keypoint `index`."""
    return sheet[:, 3 * index:3 * index + 2], sheet[:, 3 * index + 2]


def test_layout(sample: SynthSummary) -> None:
    assert sample.video_ids == tuple(f"{i:04d}" for i in range(1, SMALL["videos"] + 1)), "4-digit, as the release"
    assert sorted(sum(sample.splits.values(), ())) == sorted(sample.video_ids)
    for split in SPLITS:
        for v in sample.splits[split]:
            for path in (f"{SKELETON_DIRS[split]}/{v}/{v}_openpose.xlsx",
                         f"{SKELETON_DIRS[split]}/{v}/{v}_label.csv",
                         f"{RGB_DIRS[split]}/{v}/{v}.mp4"):
                assert (sample.out / path).is_file(), path
        emotions = read_emotions(sample.out / EMOTION_DIRS[split] / EMOTION_FILES[split])
        assert emotions == {v: sample.emotions[v] for v in sample.splits[split]}
    assert "seed=3" in (sample.out / "README.txt").read_text()


def test_sheets_are_frames_by_411_without_header(sample: SynthSummary) -> None:
    for video_id in sample.video_ids:
        sheet = read_sheet(sample, video_id)
        assert sheet.shape == (SMALL["frames"], N_COLUMNS)
        xy, c = sheet.reshape(len(sheet), -1, 3)[..., :2], sheet[:, 2::3]
        assert ((c >= 0) & (c <= 1)).all()
        assert (xy[c == 0] == 0).all(), "undetected points must be x = y = c = 0"
        assert ((xy[..., 0][c > 0] < sample.width) & (xy[..., 1][c > 0] < sample.height)).all()
        assert (points(sheet, KEYPOINT_INDEX["RAnkle"])[1] == 0).all()
        assert (points(sheet, KEYPOINT_INDEX["Neck"])[1] > 0).all()


def test_label_rows_are_valid(sample: SynthSummary) -> None:
    for video_id in sample.video_ids:
        labels = read_labels(sample, video_id)
        assert labels.shape == (SMALL["clips_per_video"], 3)
        classes, starts, ends = labels.T
        assert set(classes) <= RAW_LABELS
        assert ((0 <= starts) & (starts <= ends) & (ends < sample.frames)).all()
        assert ((ends - starts + 1 >= 16) & (ends - starts + 1 <= 40)).all()
        assert (starts[1:] > ends[:-1] + 1).all(), "clips must not overlap and need rest between"


def test_every_class_in_every_split(sample: SynthSummary) -> None:
    minimum = {"train": 2, "validate": 1, "test": 1}
    for split, ids in sample.splits.items():
        counts = Counter(int(c) for v in ids for c in read_labels(sample, v)[:, 0])
        assert set(counts) == RAW_LABELS
        assert min(counts.values()) >= minimum[split], split
    assert sample.n_clips == SMALL["videos"] * SMALL["clips_per_video"]


def test_split_is_cross_subject_with_both_emotions(sample: SynthSummary) -> None:
    subjects = {split: {sample.subjects[v] for v in ids} for split, ids in sample.splits.items()}
    assert not subjects["train"] & subjects["validate"]
    assert not subjects["train"] & subjects["test"]
    assert not subjects["validate"] & subjects["test"]
    assert max(Counter(sample.subjects.values()).values()) == 2, "some subjects have 2 videos"
    for ids in sample.splits.values():
        assert {sample.emotions[v] for v in ids} == {0, 1}


def test_same_seed_same_sample_other_seed_differs(sample: SynthSummary, tmp_path: Path) -> None:
    again = write_sample(tmp_path / "again", seed=3, **SMALL)
    other = write_sample(tmp_path / "other", seed=4, **SMALL)
    assert again.splits == sample.splits and again.emotions == sample.emotions
    for video_id in sample.video_ids:
        assert np.array_equal(read_sheet(again, video_id), read_sheet(sample, video_id))
        assert np.array_equal(read_labels(again, video_id), read_labels(sample, video_id))
        assert np.array_equal(read_video(again, video_id, rgb=False),
                              read_video(sample, video_id, rgb=False))
    for split, name in EMOTION_FILES.items():
        path = f"{EMOTION_DIRS[split]}/{name}"
        assert (again.out / path).read_text() == (sample.out / path).read_text()
    assert not np.array_equal(read_sheet(other, "0001"), read_sheet(sample, "0001"))
    assert not np.array_equal(read_labels(other, "0001"), read_labels(sample, "0001"))
    assert not np.array_equal(read_video(other, "0001", rgb=False),
                              read_video(sample, "0001", rgb=False))


def background(video: np.ndarray) -> np.ndarray:
    """(T, 3) background colour per frame: the median of the top row."""
    return np.median(video[:, 0], axis=1)


def test_keypoints_agree_with_pixels(sample: SynthSummary) -> None:
    for video_id in sample.video_ids:
        sheet, video = read_sheet(sample, video_id), read_video(sample, video_id)
        assert video.shape == (sample.frames, sample.height, sample.width, 3)
        difference = video.astype(np.int16) - background(video).astype(np.int16)[:, None, None]
        person = np.abs(difference).sum(-1) > 60
        # Palms (between wrist and middle knuckle), wrists, head and shoulders are drawn.
        checked = [((points(sheet, h.start)[0] + points(sheet, h.start + 9)[0]) / 2,
                    np.minimum(points(sheet, h.start)[1], points(sheet, h.start + 9)[1]))
                   for h in (RHAND_SLICE, LHAND_SLICE)]
        checked += [points(sheet, KEYPOINT_INDEX[name]) for name in
                    ("Nose", "Neck", "RShoulder", "LShoulder", "RWrist", "LWrist")]
        hits = np.concatenate([person[np.flatnonzero(c > 0), np.round(xy[c > 0, 1]).astype(int),
                                      np.round(xy[c > 0, 0]).astype(int)]
                               for xy, c in checked])
        assert len(hits) > 0.95 * len(checked) * sample.frames
        assert hits.mean() > 0.97, video_id
        assert person.mean() < 0.4, "a random point would mostly miss the person"
        # The top of the drawn head is where the face points put it (frame 0 is at rest);
        # 3 px of slack for rounding and the 2x2 chroma blocks of yuv420p.
        face = sheet[0, 3 * FACE_SLICE.start:3 * FACE_SLICE.stop].reshape(-1, 3)
        center_y = (face[0, 1] + face[16, 1]) / 2
        head_top = center_y - (face[8, 1] - center_y)
        assert abs(np.argmax(person[0].any(axis=1)) - head_top) <= 3, video_id


def test_emotion_is_visible(sample: SynthSummary) -> None:
    brightness = {v: background(read_video(sample, v, frames=1)).mean() for v in sample.video_ids}
    wins = [brightness[v] for v in sample.video_ids if sample.emotions[v] == 1]
    losses = [brightness[v] for v in sample.video_ids if sample.emotions[v] == 0]
    assert min(wins) > max(losses) + 20
    for video_id in sample.video_ids:
        sheet = read_sheet(sample, video_id)
        mouth_y = {i: points(sheet, FACE_SLICE.start + i)[0][:, 1] for i in (48, 51, 54, 57)}
        corners, middle = (mouth_y[48] + mouth_y[54]) / 2, (mouth_y[51] + mouth_y[57]) / 2
        smile = np.mean(middle - corners)  # > 0: corners above the middle (image y points down)
        assert smile > 1 if sample.emotions[video_id] else smile < -1, video_id


def test_gesture_class_is_learnable_from_hand_positions(sample: SynthSummary) -> None:
    """Nearest class centroid of body-normalised wrist positions at clip middles."""
    def clip_features(ids: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        features, classes = [], []
        for video_id in ids:
            sheet = read_sheet(sample, video_id)
            for raw, start, end in read_labels(sample, video_id):
                frame = sheet[(start + end) // 2].reshape(-1, 3)[:, :2]
                neck = frame[KEYPOINT_INDEX["Neck"]]
                width = np.linalg.norm(frame[KEYPOINT_INDEX["LShoulder"]]
                                       - frame[KEYPOINT_INDEX["RShoulder"]])
                wrists = frame[[KEYPOINT_INDEX["RWrist"], KEYPOINT_INDEX["LWrist"]]]
                features.append(((wrists - neck) / width).ravel())
                classes.append(raw_label_to_index(raw))
        return np.array(features), np.array(classes)

    x_train, y_train = clip_features(sample.splits["train"])
    x_eval, y_eval = clip_features(sample.splits["validate"] + sample.splits["test"])
    centroids = np.stack([x_train[y_train == c].mean(0) for c in range(N_MG_CLASSES)])
    predicted = np.argmin(((x_eval[:, None] - centroids) ** 2).sum(-1), axis=1)
    assert np.mean(predicted == y_eval) > 0.8


def test_raw_labels_round_trip() -> None:
    assert len(MG_CLASS_NAMES) == N_MG_CLASSES == 32
    assert [raw_label_to_index(r) for r in (1, 31, 99)] == [0, 30, 31]
    assert all(raw_label_to_index(index_to_raw_label(i)) == i for i in range(N_MG_CLASSES))
    for bad in (0, 32, 98):
        with pytest.raises(ValueError, match=str(bad)):
            raw_label_to_index(bad)
    with pytest.raises(ValueError, match="32"):
        index_to_raw_label(32)


@pytest.mark.parametrize("sizes, message", [
    (dict(videos=12, clips_per_video=10), "at least 15 videos"),
    (dict(videos=5, clips_per_video=40, frames=1000), "at least 6 videos"),
    (dict(frames=200), "frames=200"),
    (dict(width=161), "161x120"),
])
def test_impossible_sizes_raise(tmp_path: Path, sizes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_sample(tmp_path, **sizes)
    assert not any(tmp_path.iterdir()), "nothing is written when the sizes are refused"


def test_label_rows_are_the_videos_segments(sample: SynthSummary, tmp_path: Path) -> None:
    """MiGA's per-video label rows are each long video's gesture segments (Track 2), test split too;
    a test label file without classes leaves its video's segments unknown (None)."""
    from migue.pipeline.datasets import read_dataset
    from migue.pipeline.datasets.manifest import Segment

    manifest = read_dataset(sample.out)
    for video_id in sample.video_ids:
        rows = read_labels(sample, video_id)
        expected = sorted((Segment(raw_label_to_index(int(c)), int(s), int(e)) for c, s, e in rows),
                          key=lambda g: g.start)
        assert manifest.videos[video_id].segments == tuple(expected), video_id
    copy = tmp_path / "copy"
    shutil.copytree(sample.out, copy, ignore=shutil.ignore_patterns("*.mp4"))
    test_id = sample.splits["test"][0]
    labels = copy / SKELETON_DIRS["test"] / test_id / f"{test_id}_label.csv"
    labels.write_text("".join(f"{s},{e}\n" for _, s, e in read_labels(sample, test_id)))
    unlabelled = read_dataset(copy)
    assert unlabelled.videos[test_id].segments is None
    assert unlabelled.videos[sample.splits["test"][1]].segments is not None


def test_data_check_reports_segments_and_background(sample: SynthSummary) -> None:
    from click.testing import CliRunner

    from migue.pipeline.cli import main

    result = CliRunner().invoke(main, ["data", "check", str(sample.out), "--no-skeletons", "--cache",
                                       str(sample.out / "cache")])
    lines = result.output.splitlines()
    header = next(line for line in lines if "with segments" in line)
    train = lines[lines.index(header) + 1].split()
    ids = sample.splits["train"]
    covered = sum(int(e - s + 1) for v in ids for _, s, e in read_labels(sample, v))  # clips do not overlap
    frames, n_clips = len(ids) * sample.frames, len(ids) * SMALL["clips_per_video"]
    assert train == ["train", str(len(ids)), str(len(ids)), str(n_clips), f"{covered / n_clips:.1f}", str(frames),
                     f"{1 - covered / frames:.1%}"]


@pytest.mark.parametrize("sizes, advice", [
    (dict(videos=4), "use at least 12 videos (--videos 12); no number of clips per video fits 4 videos"),
    (dict(videos=12, clips_per_video=10), "use at least 15 videos (--videos 15), or --clips-per-video 11 "
                                          "(with --frames 224 or more)"),
])
def test_size_refusal_advises_real_options(tmp_path: Path, sizes: dict, advice: str) -> None:
    """`synth --videos 4` advised 'more clips per video', an option that did not exist (issue 24)."""
    from click.testing import CliRunner

    from migue.pipeline.cli import main

    with pytest.raises(ValueError) as refused:
        write_sample(tmp_path / "api", **sizes)
    assert advice in str(refused.value) and "more clips per video" not in str(refused.value)
    args = ["synth", "--out", str(tmp_path / "cli"), "--videos", str(sizes["videos"])]
    if "clips_per_video" in sizes:
        args += ["--clips-per-video", str(sizes["clips_per_video"])]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0 and advice in " ".join(result.output.split())
