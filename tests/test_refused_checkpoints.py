"""A checkpoint the safe loader refuses (issue 23, case 12): no empty cache entry is left behind,
and `evaluate` / `predict` on a refused or corrupt head.pt print a sentence, not a traceback."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from migue.fusion import config_for, train_run
from migue.fusion.synthetic import write_mg
from migue.pipeline.cli import main

from conftest import write_small_packs


class Gadget:  # any class: the safe loader refuses to unpickle it
    pass


def _refused(path: Path) -> Path:
    torch.save({"state_dict": {"w": torch.zeros(1)}, "meta": Gadget()}, path)
    return path


def _corrupt(path: Path) -> Path:
    path.write_bytes(b"PK\x03\x04 not a torch zip at all")
    return path


def _truncated(path: Path) -> Path:
    path.write_bytes(b"junk")
    return path


def _empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


BAD = {"refused": (_refused, "holds objects beyond tensors"), "corrupt": (_corrupt, "not a readable")}
HEADS = {**BAD, "truncated": (_truncated, "not a readable"), "empty": (_empty, "not a readable")}


@pytest.fixture(scope="module")
def packs(tmp_path_factory):
    """ST-GCN packs of 2 clips per split: the smallest dataset pose extraction reads."""
    return write_small_packs(tmp_path_factory.mktemp("packs"))


@pytest.mark.parametrize("kind", BAD)
def test_a_refused_checkpoint_leaves_no_cache_entry(packs, tmp_path, kind):
    make, said = BAD[kind]
    ckpt = make(tmp_path / "agcn.pth")
    cache = tmp_path / "cache"
    result = CliRunner().invoke(main, ["extract", "--modality", "pose", "--data", str(packs), "--cache", str(cache),
                                       "--checkpoint", str(ckpt), "--checkpoint", str(ckpt), "--workers", "0"])
    assert result.exit_code != 0 and said in result.output, result.output
    assert "Traceback" not in result.output
    assert not list(cache.glob("pose-*")), "an empty entry was left behind"


@pytest.mark.slow
def test_a_refused_checkpoint_leaves_no_cache_entry_on_dask(packs, tmp_path, dask_cluster):
    """Old code: the Dask driver opened the entry before any worker built the model, so the
    refused checkpoint left an empty pose entry behind."""
    make, said = BAD["refused"]
    ckpt = make(tmp_path / "agcn.pth")
    cache = tmp_path / "cache"
    result = CliRunner().invoke(main, ["extract", "--modality", "pose", "--data", str(packs), "--cache", str(cache),
                                       "--checkpoint", str(ckpt), "--checkpoint", str(ckpt),
                                       "--scheduler", dask_cluster.scheduler_address])
    assert result.exit_code != 0 and said in result.output, result.output
    assert "Traceback" not in result.output
    assert not list(cache.glob("pose-*")), "an empty entry was left behind"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    entries = write_mg(root, per_class=(2, 1, 1), num_classes=4, dim=8)
    run = tmp_path_factory.mktemp("run")
    cfg = {"width": 16, "depth": 1, "num_heads": 2, "epochs": 1, "warmup_epochs": 0.5}
    train_run("mg", entries, run, config_for("mg", "cmtf", cfg))
    return run


@pytest.mark.parametrize("kind", HEADS)
@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_a_refused_or_corrupt_head_is_one_sentence(finished_run, tmp_path, kind, command):
    import shutil

    run = Path(shutil.copytree(finished_run, tmp_path / "run"))
    make, said = HEADS[kind]
    make(run / "head.pt")
    args = [command, str(run)] + (["--out", str(tmp_path / "p.csv")] if command == "predict" else [])
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert f"{run / 'head.pt'}" in result.output and said in result.output, result.output
