"""The MiGA 2025 release as its zips unpack: the skeleton folders sit two levels below the root
(`imigue_data_phase1/datasets/imigue_skeleton_train/...`). Reading must find them at any depth;
before, `split_folders` looked one level down and train/validate vanished without a word.
The generated sample is written in that nesting (`migue synth`), so every test reads it."""
from __future__ import annotations

from migue.pipeline.datasets import detect_layout
from migue.pipeline.datasets.common import split_folders


def test_split_folders_two_levels_down_are_read(sample_dir, manifest):
    assert [p.relative_to(sample_dir).as_posix() for p in split_folders(sample_dir)] == [
        "imigue_data_phase1/datasets/imigue_skeleton_train",
        "imigue_data_phase1/datasets/imigue_skeleton_validate",
        "imigue_data_phase2/imigue_skeleton_test"]
    assert detect_layout(sample_dir)[0] == "miga2025"
    assert {v.split for v in manifest.videos.values()} == {"train", "val", "test"}
    assert {u.split for u in manifest.units} == {"train", "val", "test"}
    assert manifest.problems == []
