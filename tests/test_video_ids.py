"""One video, one id, one split (issue 23, cases 1 and 2): a video id in two split folders, or
two spellings of one id (`0006` and `6`), is a problem naming both places, never two manifest
rows for one unit and never one video file read under two ids."""
from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner
from conftest import clone

from migue.pipeline.cli import main
from migue.pipeline.datasets import read_dataset
from migue.pipeline.datasets.files import video_key


def _copy_video_folder(root: Path, video: str, to_split: str, as_id: str) -> tuple[Path, Path]:
    """Copy the train folder of `video` into the `to_split` folder as `as_id` (files renamed)."""
    source = next(root.glob(f"**/imigue_skeleton_train/{video}"))
    target = next(root.glob(f"**/imigue_skeleton_{to_split}")) / as_id
    target.mkdir()
    for path in source.iterdir():
        shutil.copy2(path, target / path.name.replace(f"{video}_", f"{as_id}_", 1))
    return source, target


def _problem_naming(manifest, *places: Path) -> list[str]:
    return [p for p in manifest.problems if all(str(place) in p for place in places)]


def _one_video_per_key(manifest) -> None:
    keys = [video_key(v) for v in manifest.videos]
    assert len(keys) == len(set(keys)), sorted(manifest.videos)
    paths = [v.video_path for v in manifest.videos.values() if v.video_path is not None]
    assert len(paths) == len(set(paths)), "one video file read under two ids"
    ids = [u.unit_id for u in manifest.units]
    assert len(ids) == len(set(ids)), "a unit id in two manifest rows"
    for unit in manifest.units:
        assert unit.split == manifest.videos[unit.video_id].split


def test_a_video_id_in_two_split_folders_is_a_problem_not_two_rows(sample_dir, tmp_path):
    root = clone(sample_dir, tmp_path / "data")
    train, test = _copy_video_folder(root, "0012", "test", "0012")
    manifest = read_dataset(root, window=64)
    _one_video_per_key(manifest)
    assert len(manifest.videos) == 12
    assert _problem_naming(manifest, train, test), manifest.problems
    windows = [u for u in manifest.of_kind("window") if u.video_id == "0012"]
    assert len(windows) == len({u.unit_id for u in windows}) == 4


def test_data_check_names_both_folders_of_a_duplicated_id(sample_dir, tmp_path):
    root = clone(sample_dir, tmp_path / "data")
    train, test = _copy_video_folder(root, "0012", "test", "0012")
    result = CliRunner().invoke(main, ["data", "check", str(root), "--cache", str(tmp_path / "cache"),
                                       "--no-skeletons"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines()
             if str(train) in line and str(test) in line and "split" in line]
    assert lines, result.output
    videos = {line.split()[0]: int(line.split()[1]) for line in result.output.splitlines()
              if line.split()[:1] in (["train"], ["val"], ["test"]) and line.split()[1].isdigit()}
    assert videos == {"train": 6, "val": 3, "test": 3}, result.output  # 0012 counted once, in train


def test_two_spellings_of_one_id_never_read_one_video_twice(sample_dir, tmp_path):
    """`6` in test and `0006` in train: the test video must not read train's 0006.mp4."""
    root = clone(sample_dir, tmp_path / "data")
    train, test = _copy_video_folder(root, "0006", "test", "6")
    manifest = read_dataset(root, window=64)
    _one_video_per_key(manifest)
    assert len([k for k in manifest.videos if video_key(k) == "6"]) == 1
    problems = _problem_naming(manifest, train, test)
    assert [p for p in problems if "video 6 " in p and "video 0006 " in p], manifest.problems


def test_two_spellings_in_labels_csv_are_one_video_and_a_problem(release_layouts, tmp_path):
    root = clone(release_layouts["imigue"], tmp_path / "data")
    labels = root / "labels.csv"
    lines = labels.read_text().splitlines()
    rows = [i for i, line in enumerate(lines) if line.startswith("0006,")]
    for i in rows[len(rows) // 2:]:
        lines[i] = "6," + lines[i].split(",", 1)[1]
    labels.write_text("\n".join(lines) + "\n")
    manifest = read_dataset(root, window=64)
    _one_video_per_key(manifest)
    named = [p for p in manifest.problems if "0006" in p and "video 6 " in p]
    assert named, manifest.problems
