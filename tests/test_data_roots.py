"""Inputs that disagree (issue 23, case 12): a data folder that is `/` or a home, folders linked in
from outside the dataset folder, and skeletons made for another video size or frame rate."""
from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import clone

from migue.pipeline.cli import main
from migue.pipeline.datasets import read_dataset
from migue.pipeline.datasets.skeleton import parse_skeleton
from migue.synth.sample import _write_xlsx

TRAIN = "imigue_data_phase1/datasets/imigue_skeleton_train"


@pytest.fixture
def no_walk_of_slash(monkeypatch):
    """os.walk of the file system root fails the test at once (instead of walking the disk)."""
    real = os.walk

    def walk(top, *args, **kwargs):
        assert Path(top).resolve() != Path("/"), f"walked {top} (the whole disk)"
        return real(top, *args, **kwargs)

    monkeypatch.setattr(os, "walk", walk)


def _check(*roots: Path, cache: Path, skeletons: bool = False) -> tuple[int, str]:
    args = ["data", "check", *map(str, roots), "--cache", str(cache)]
    result = CliRunner().invoke(main, args + ([] if skeletons else ["--no-skeletons"]))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def _pack(folder: Path) -> Path:
    """A train-only ST-GCN pack (2 clips): the smallest dataset."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "train_data.npy", np.random.default_rng(0).random((2, 3, 90, 22, 1), dtype=np.float32))
    with open(folder / "train_label.pkl", "wb") as f:
        pickle.dump((["1_0", "1_1"], [3, 7]), f)
    return folder


def test_a_data_folder_linked_to_the_file_system_root_is_refused(tmp_path, no_walk_of_slash):
    link = tmp_path / "data"
    link.symlink_to("/")
    code, out = _check(link, cache=tmp_path / "cache")
    assert code != 0 and "Traceback" not in out
    assert f"{link}: refusing to read / as a dataset folder" in out
    with pytest.raises(ValueError, match="the file system root"):
        read_dataset(link)


def test_a_home_folder_or_one_holding_homes_is_refused(tmp_path, monkeypatch):
    home = _pack(tmp_path / "homes" / "me")
    monkeypatch.setenv("HOME", str(home))
    for root in (home, tmp_path / "homes"):
        with pytest.raises(ValueError, match=f"{root}: refusing to read .* (is|holds) a home folder"):
            read_dataset(root)
    assert read_dataset(_pack(home / "imigue")).units  # a folder inside the home is read


def test_a_folder_linked_in_from_outside_is_not_followed_and_named(sample_dir, tmp_path, no_walk_of_slash):
    root = clone(sample_dir, tmp_path / "release")
    outside = tmp_path / "elsewhere" / "imigue_rgb_phase2"
    outside.parent.mkdir()
    (root / "imigue_rgb_phase2").rename(outside)
    (root / "imigue_rgb_phase2").symlink_to(outside)
    (root / "imigue_data_phase1" / "slash").symlink_to("/")
    m = read_dataset(root)
    assert not any(v.video_path and str(v.video_path).startswith(str(outside)) for v in m.videos.values())
    assert any(f"{root / 'imigue_rgb_phase2'} is a link to {outside}, outside the dataset folder: not followed"
               in note for note in m.notes), m.notes
    assert any(f"{root / 'imigue_data_phase1' / 'slash'} is a link to /" in note for note in m.notes), m.notes
    both = read_dataset([root, outside])  # named as another data folder, it is read
    assert not both.problems and all(v.video_path is not None for v in both.videos.values())


def test_labels_in_a_folder_linked_from_outside_are_not_read(release_layouts, tmp_path):
    root = clone(release_layouts["imigue"], tmp_path / "release")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.move(root / "labels.csv", outside / "labels.csv")
    (root / "meta").symlink_to(outside)
    assert read_dataset(tmp_path / "elsewhere").layout == "imigue"
    with pytest.raises(ValueError, match="no known dataset layout"):
        read_dataset(root)


# ---------------------------------------------------------------- skeleton and video disagree
def _rewrite_sheet(path: Path, change) -> None:
    keypoints = parse_skeleton(path, None)  # (T, 137, 3) in pixels
    out = change(keypoints.copy())
    _write_xlsx(path, out.reshape(len(out), -1))


def test_a_skeleton_made_for_another_video_size_or_rate_is_a_problem(sample_dir, tmp_path):
    root = clone(sample_dir, tmp_path / "release")
    bigger, faster, unit = (root / TRAIN / v / f"{v}_openpose.xlsx" for v in ("0001", "0005", "0006"))

    def as_240x180(kp):  # the sheet was made on frames 1.5x the video's 160x120
        kp[..., :2] *= 1.5
        return kp

    def at_30_fps(kp):  # 260 frames at 25 fps are 312 at 30 fps
        return kp[np.round(np.arange(312) * 260 / 312).astype(int)]

    def normalised(kp):  # coordinates in [0, 1], not pixels
        kp[..., 0] /= 160
        kp[..., 1] /= 120
        return kp

    for path, change in ((bigger, as_240x180), (faster, at_30_fps), (unit, normalised)):
        _rewrite_sheet(path, change)
    code, out = _check(root, cache=tmp_path / "cache", skeletons=True)
    assert code == 1
    video = root / "imigue_rgb_phase1/train_data"
    assert f"{bigger}: keypoints reach x " in out
    assert f"outside the 160x120 frames of {video / '0001' / '0001.mp4'}" in out
    assert f"{faster}: 312 frames, but {video / '0005' / '0005.mp4'} has 260 (25 fps)" in out
    assert f"{unit}: coordinates within [0, 1] (normalised), but {video / '0006' / '0006.mp4'} is 160x120" in out
    problems = out[out.index("problem(s):"):]
    assert sum(str(root / TRAIN) in line for line in problems.splitlines()) == 3, problems  # no other video


def test_linked_split_and_video_folders_from_outside_are_not_read(sample_dir, tmp_path, no_walk_of_slash):
    """Old code: split_folders took linked `imigue_skeleton_<split>` folders from os.walk's names and
    the reader followed linked `<id>/` folders, so pose units came from outside the data folder."""
    root = clone(sample_dir, tmp_path / "release")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    validate = root / "imigue_data_phase1/datasets/imigue_skeleton_validate"
    shutil.move(validate, elsewhere / validate.name)
    validate.symlink_to(elsewhere / validate.name)
    video = root / TRAIN / "0008"
    shutil.move(video, elsewhere / "0008")
    video.symlink_to(elsewhere / "0008")
    m = read_dataset(root)
    outside = [v for v in m.videos.values() if v.skeleton_path and not Path(v.skeleton_path).resolve()
               .is_relative_to(root.resolve())]
    assert not outside, outside
    assert not any(u.video_id in ("8", "0008", "2", "0002") for u in m.units)
    for link in (validate, video):
        assert any(f"{link} is a link to {link.resolve()}, outside the dataset folder: not followed" in note
                   for note in m.notes), m.notes


def test_an_stgcn_packs_labels_csv_in_a_folder_linked_in_is_not_read(release_layouts, tmp_path):
    """Old code: `_label_ranges` globbed `*/labels.csv` through a folder linked in from elsewhere and
    placed the pack's clips by it."""
    def ids(meta_from_outside: bool) -> set[str]:
        root = clone(release_layouts["stgcn"], tmp_path / f"packs-{meta_from_outside}")
        meta = tmp_path / f"elsewhere-{meta_from_outside}" if meta_from_outside else root / "meta"
        meta.mkdir()
        shutil.copy(release_layouts["imigue"] / "labels.csv", meta / "labels.csv")
        if meta_from_outside:
            (root / "meta").symlink_to(meta)
        return {u.unit_id for u in read_dataset(root, layout="stgcn").units if u.kind == "mg"}

    inside = ids(False)
    assert inside and not any(":clip" in uid for uid in inside)  # placed at their frames by labels.csv
    outside = ids(True)
    assert outside and all(":clip" in uid for uid in outside), sorted(outside)[:3]
