"""A split the download lacks is a note; a split folder that yields nothing, or no train split, is a
problem (issue 23, case 13)."""
from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from conftest import clone

from migue.pipeline.cli import main
from migue.pipeline.datasets import read_dataset

VALIDATE = "imigue_data_phase1/datasets/imigue_skeleton_validate"
RGB_VALIDATE = "imigue_rgb_phase1/validation_data"
TRAIN = "imigue_data_phase1/datasets/imigue_skeleton_train"


def _check(root: Path, cache: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["data", "check", str(root), "--cache", str(cache), "--no-skeletons"])
    return result.exit_code, result.output


def test_miga2025_without_its_validate_download_is_a_note(sample_dir, tmp_path):
    root = clone(sample_dir, tmp_path / "phase1")
    shutil.rmtree(root / VALIDATE)
    shutil.rmtree(root / RGB_VALIDATE)
    code, out = _check(root, tmp_path / "cache")
    assert code == 0, out
    assert "split is empty" not in out
    assert (f"no val split: the miga2025 reader looked for imigue_skeleton_validate/<id>/ folders (at any depth) "
            f"under {root} and found none") in out
    m = read_dataset(root)
    assert m.empty_splits == {} and not m.problems
    assert {u.split for u in m.units} == {"train", "test"}  # the others are read (and extracted)


def test_an_stgcn_pack_of_train_only_is_a_note(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.random((2, 3, 90, 22, 1), dtype=np.float32)
    np.save(tmp_path / "train_data.npy", data)
    with open(tmp_path / "train_label.pkl", "wb") as f:
        pickle.dump((["1_0", "1_1"], [3, 7]), f)
    code, out = _check(tmp_path, tmp_path / "cache")
    assert code == 0, out
    for split in ("val", "test"):
        assert (f"no {split} split: the stgcn reader looked for <part>_data.npy + <part>_label.pkl packs "
                f"(at a root or one folder down) for the {split} split under {tmp_path} and found none") in out


def test_a_validate_folder_that_yields_nothing_stays_a_problem(sample_dir, tmp_path):
    root = clone(sample_dir, tmp_path / "release")
    for folder in (root / VALIDATE).iterdir():
        shutil.rmtree(folder)
    shutil.rmtree(root / RGB_VALIDATE)
    code, out = _check(root, tmp_path / "cache")
    assert code == 1
    assert "the val split is empty" in out
    assert f"{root / VALIDATE}: no video folders (<id>/) in this val split folder" in out


def test_a_missing_train_split_stays_a_problem(sample_dir, tmp_path):
    root = clone(sample_dir, tmp_path / "release")
    shutil.rmtree(root / TRAIN)
    shutil.rmtree(root / "imigue_rgb_phase1/train_data")
    code, out = _check(root, tmp_path / "cache")
    assert code == 1
    assert "the train split is empty: the miga2025 reader looked for imigue_skeleton_train/<id>/ folders" in out


def test_a_test_folder_that_yields_nothing_is_a_problem(sample_dir, tmp_path):
    """Old code: an empty imigue_skeleton_test/ got neither the note nor the problem of an empty split."""
    root = clone(sample_dir, tmp_path / "release")
    test = root / "imigue_data_phase2/imigue_skeleton_test"
    for folder in test.iterdir():
        shutil.rmtree(folder)
    shutil.rmtree(root / "imigue_rgb_phase2")
    m = read_dataset(root)
    assert "test" in m.empty_splits, (m.empty_splits, m.notes)
    assert m.empty_splits["test"].startswith("the test split is empty: the miga2025 reader looked for "
                                             "imigue_skeleton_test/<id>/ folders")
    assert not any("no test split" in note for note in m.notes)
    code, out = _check(root, tmp_path / "cache")
    assert code == 1 and "the test split is empty" in out, out
