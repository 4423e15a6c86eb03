"""The MiGA 2025 release as its zips unpack: the skeleton folders sit two levels below the root
(`imigue_data_phase1/datasets/imigue_skeleton_train/...`). Reading must find them at any depth;
before, `split_folders` looked one level down and train/validate vanished without a word."""
from __future__ import annotations

import shutil
from pathlib import Path

from migue.pipeline.datasets import detect_layout, read_dataset

NESTING = {"train": "imigue_data_phase1/datasets", "validate": "imigue_data_phase1/datasets",
           "test": "imigue_data_phase2"}


def nest_like_the_release(src: Path, dst: Path) -> Path:
    """Copy the sample with each skeleton split folder moved to its depth in the release."""
    shutil.copytree(src, dst, symlinks=True)
    for split, parent in NESTING.items():
        target = dst / parent
        target.mkdir(parents=True, exist_ok=True)
        (dst / f"imigue_skeleton_{split}").rename(target / f"imigue_skeleton_{split}")
    return dst


def test_split_folders_two_levels_down_are_read(sample_dir, manifest, tmp_path):
    nested = nest_like_the_release(sample_dir, tmp_path / "release")
    assert detect_layout(nested)[0] == "miga2025"
    got = read_dataset(nested, window=64)
    want_splits = {v.split for v in manifest.videos.values()}
    assert {v.split for v in got.videos.values()} == want_splits == {"train", "val", "test"}
    assert sorted(u.unit_id for u in got.units) == sorted(u.unit_id for u in manifest.units)
    assert got.problems == manifest.problems
