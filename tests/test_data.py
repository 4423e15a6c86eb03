"""Reading the MiGA 2025 layout into a manifest, and what bad files get."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from migue.pipeline.datasets.classes import N_MG_CLASSES
from migue.pipeline.datasets import read_dataset
from migue.pipeline.datasets.labels import read_clip_labels
from migue.pipeline.datasets.manifest import make_unit_id
from migue.pipeline.datasets.skeleton import SkeletonError, _table_to_array, read_openpose_xlsx
from migue.synth.sample import SKELETON_DIRS


def test_manifest_of_the_sample(manifest, sample_dir):
    assert manifest.layout == "miga2025" and not manifest.problems
    assert len(manifest.videos) == 12
    mg = manifest.of_kind("mg")
    labels_on_disk = sum(len(p.read_text().splitlines()) for p in sample_dir.glob("**/imigue_skeleton_*/*/*_label.csv"))
    assert len(mg) == labels_on_disk
    assert {u.mg_label for u in mg if u.split == "train"} == set(range(N_MG_CLASSES))
    ids = [u.unit_id for u in manifest.units]
    assert len(ids) == len(set(ids))


def test_splits_come_from_folders_and_never_share_a_video(manifest, sample_dir):
    for video in manifest.videos.values():
        folder = {"train": "train", "val": "validate", "test": "test"}[video.split]
        assert (sample_dir / SKELETON_DIRS[folder] / video.video_id).is_dir()
    for unit in manifest.units:
        assert unit.split == manifest.videos[unit.video_id].split


def test_emotion_labels_reach_every_unit(manifest, sample_dir):
    import pandas as pd
    truth = pd.concat([pd.read_csv(next(sample_dir.glob(f"**/{f}")), dtype={"video_id": str}) for f in ("train_label.csv", "validation_label.csv",
                                                              "test_label.csv")])
    expected = dict(zip(truth.video_id.astype(str), truth.label))
    for unit in manifest.units:
        assert unit.emotion == expected[unit.video_id]


def test_windows_tile_each_video(manifest):
    for video in manifest.videos.values():
        windows = sorted((u for u in manifest.of_kind("window") if u.video_id == video.video_id),
                         key=lambda u: u.start)
        assert len(windows) == video.frames // 64
        assert all(w.frames == 64 for w in windows)
        assert all(b.start == a.end + 1 for a, b in zip(windows, windows[1:]))


def test_unit_ids_are_video_plus_frame_range():
    assert make_unit_id("12", 5, 40) == "12:000005-000040"


def test_skeleton_sheet_reads_to_keypoints(manifest):
    video = next(iter(manifest.videos.values()))
    keypoints = read_openpose_xlsx(video.skeleton_path)
    assert keypoints.shape == (video.frames, 137, 3)
    seen = keypoints[..., 2] > 0
    assert (keypoints[..., 0][seen] <= video.width).all() and (keypoints[..., 1][seen] <= video.height).all()


@pytest.mark.parametrize("rows, message", [
    ([[0.0] * 410], "row 1 has 410 columns, expected 411"),
    ([[0.0] * 411, [0.0] * 5 + ["abc"] + [0.0] * 405], "row 2, column 6 is not a number"),
    ([[0.0] * 10 + [float("nan")] + [0.0] * 400], "row 1, column 11 is nan"),
    ([[0.0] * 411, [0.0] * 3 + [None] + [0.0] * 407], "row 2, column 4 is empty"),
    ([[0.0] * 411, [0.0] * 7 + [10 ** 400] + [0.0] * 403], "row 2, column 8 is not a number"),
    ([[0.0] * 7 + [1e300] + [0.0] * 403], "row 1, column 8 is 1e[+]300 [(]not a finite number"),
])
def test_bad_skeleton_tables_name_row_and_column(tmp_path, rows, message):
    with pytest.raises(SkeletonError, match=message):
        _table_to_array(rows, tmp_path / "1_openpose.xlsx")


def test_empty_skeleton_is_real_input(tmp_path):
    assert _table_to_array([], tmp_path / "347_openpose.xlsx").shape == (0, 137, 3)


def test_broken_workbook_is_named(tmp_path):
    bad = tmp_path / "9_openpose.xlsx"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(SkeletonError, match="9_openpose.xlsx"):
        read_openpose_xlsx(bad)


def test_bad_label_rows_are_reported_and_skipped(tmp_path):
    path = tmp_path / "5_label.csv"
    path.write_text("3,10,20\n77,30,40\n4,50,45\nx,1,2\n99,60,70\n5,90,120\n")
    problems: list[str] = []
    clips = read_clip_labels(path, n_frames=100, problems=problems)
    assert [(c.mg_label, c.start, c.end) for c in clips] == [(2, 10, 20), (31, 60, 70)]
    assert len(problems) == 4
    assert all(str(path) in p for p in problems)
    assert "row 2" in problems[0] and "unknown class" in problems[0]
    assert "row 3" in problems[1] and "after end" in problems[1]
    assert "row 4" in problems[2] and "class 'x' is not an integer" in problems[2]
    assert "row 6" in problems[3] and "past the video's last frame 99" in problems[3]


def test_missing_video_is_a_problem_and_other_videos_still_read(sample_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(sample_dir, copy)
    victim = next(copy.glob("imigue_rgb_phase1/train_data/*/*.mp4"))
    victim.unlink()
    manifest = read_dataset(copy)
    assert any(f"video {victim.stem}.mp4 not found" in p for p in manifest.problems)
    assert manifest.videos[victim.stem].video_path is None
    assert sum(v.video_path is not None for v in manifest.videos.values()) == 11


def test_not_a_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no known dataset layout"):
        read_dataset(tmp_path)


def test_sample_indices_spread_over_the_clip():
    from migue.pipeline.extraction.inputs import sample_indices
    idx = sample_indices(10, 41, 16)
    assert idx[0] >= 10 and idx[-1] <= 41 and np.all(np.diff(idx) == 2)
    assert list(sample_indices(0, 3, 8)) == [0, 0, 1, 1, 2, 2, 3, 3]
