"""Run folders that never lie (issue 23, case 6): a new fuse-train into a folder holding a run
refuses unless --resume or --overwrite; an overwrite killed early leaves no old result under the
new config.json; every file of a run is published atomically (a failed write keeps the old one)."""
from __future__ import annotations

import errno
import json

import pytest
import torch
from click.testing import CliRunner

from migue.fusion import train_run
from migue.fusion.reports import finished_metrics
from migue.fusion.synthetic import write_mg
from migue.pipeline.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROBE = ["--fusion", "probe-linear-rgb", "--epochs", "2"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    write_mg(root, per_class=(4, 1, 1), signal=0.6)
    return root


def _train(cache, run, *extra):
    return CliRunner().invoke(main, ["fuse-train", "--task", "mg", "--cache", str(cache), "--out", str(run),
                                     *PROBE, *extra])


def _files(run):
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}


def test_a_new_run_into_a_finished_run_folder_is_refused(cache, tmp_path):
    run = tmp_path / "run"
    assert _train(cache, run).exit_code == 0
    before = _files(run)
    again = _train(cache, run, "--set", "lr=0.01")
    assert again.exit_code == 2, again.output
    assert f"{run} already holds a run" in again.output
    assert "--resume" in again.output and "--overwrite" in again.output
    assert _files(run) == before  # nothing touched


def test_resume_and_overwrite_together_are_refused(cache, tmp_path):
    result = _train(cache, tmp_path / "run", "--resume", "--overwrite")
    assert result.exit_code == 2 and "--resume or --overwrite, not both" in result.output, result.output


def test_an_overwrite_killed_early_leaves_no_old_result_behind(cache, tmp_path, monkeypatch):
    """Old code: the killed run kept the old done.json, metrics.json and head.pt under the new
    config.json, and `evaluate` reported the old head's score."""
    import migue.fusion.runs as runs

    run = tmp_path / "run"
    assert _train(cache, run).exit_code == 0

    def killed(*_args, **_kw):
        raise KeyboardInterrupt  # killed during the first epoch

    monkeypatch.setattr(runs, "_fit", killed)
    result = _train(cache, run, "--overwrite", "--set", "lr=0.01")
    assert result.exit_code == 130 and "interrupted (Ctrl-C)" in result.output  # the app's answer to a Ctrl-C
    assert json.loads((run / "config.json").read_text())["config"]["lr"] == 0.01  # the new run's
    assert finished_metrics(run) is None
    left = {p.name for p in run.iterdir()}
    assert not left & {"done.json", "metrics.json", "head.pt", "checkpoint.pt", "history.csv", "per_class.csv",
                       "confusion.png", "curves.png", "tensorboard"}, left
    evaluated = CliRunner().invoke(main, ["evaluate", str(run)])
    assert evaluated.exit_code == 2
    assert f"{run} is not a finished run" in evaluated.output, evaluated.output


def test_overwrite_replaces_a_run_and_resume_continues_one(cache, tmp_path):
    run = tmp_path / "run"
    assert _train(cache, run).exit_code == 0
    replaced = _train(cache, run, "--overwrite", "--set", "lr=0.01")
    assert replaced.exit_code == 0, replaced.output
    assert json.loads((run / "config.json").read_text())["config"]["lr"] == 0.01
    assert finished_metrics(run) is not None
    resumed = _train(cache, run, "--resume", "--set", "lr=0.01")
    assert resumed.exit_code == 0, resumed.output
    assert finished_metrics(run) is not None


def test_head_pt_is_published_atomically(cache, tmp_path, monkeypatch):
    """Old code: torch.save wrote head.pt in place, so a full disk left it torn."""
    from migue.cache import EntryReader, FeatureStore

    entries = {e.modality: EntryReader(cache / e.name) for e in FeatureStore(cache).entries()}
    run = tmp_path / "run"
    config = {"head": "probe-linear-rgb", "epochs": 2}
    train_run("mg", entries, run, dict(config))
    head = (run / "head.pt").read_bytes()
    real = torch.save

    def half_then_full(obj, f, *args, **kw):
        real(obj, f, *args, **kw)
        f.seek(0)
        f.truncate(10)  # part of the file written, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", half_then_full)
    with pytest.raises(OSError):
        train_run("mg", entries, run, {**config, "resume": True})  # no epoch left: rewrites the results
    assert (run / "head.pt").read_bytes() == head
    assert not [p.name for p in run.iterdir() if p.name.startswith(".tmp-")]


def test_every_result_file_is_written_through_a_temp_name(cache, tmp_path, monkeypatch):
    """Each file of a run appears under its name only complete: created under a temp name, renamed."""
    import os

    from migue.cache import EntryReader, FeatureStore

    entries = {e.modality: EntryReader(cache / e.name) for e in FeatureStore(cache).entries()}
    run = tmp_path / "run"
    run.mkdir()
    published, real = set(), os.replace

    def replace(src, dst, *args, **kw):
        published.add(os.path.relpath(dst, run))
        return real(src, dst, *args, **kw)

    monkeypatch.setattr(os, "replace", replace)
    train_run("mg", entries, run, {"head": "probe-linear-rgb", "epochs": 2})
    written = {os.path.relpath(p, run) for p in run.iterdir()}
    assert written <= published, written - published


def test_overwrite_into_a_folder_that_holds_no_run_is_refused(cache, tmp_path):
    """Old code: --overwrite into any folder removed head.pt, metrics.json, checkpoint.pt and
    tensorboard/ there, run or not."""
    folder = tmp_path / "logs"
    (folder / "tensorboard").mkdir(parents=True)
    (folder / "tensorboard" / "x").write_text("mine")
    (folder / "metrics.json").write_text("{}")
    result = _train(cache, folder, "--overwrite")
    assert result.exit_code == 2, result.output
    assert f"{folder} holds metrics.json, tensorboard but no run (no config.json or done.json)" in result.output
    assert (folder / "tensorboard" / "x").read_text() == "mine" and (folder / "metrics.json").read_text() == "{}"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _train(cache, empty, "--overwrite").exit_code == 0  # an empty folder is fine


@pytest.mark.parametrize("kind", ["file", "link"])
def test_a_tensorboard_that_is_no_folder_is_refused_in_a_sentence(tmp_path, kind):
    """Old code: the swap removed only a folder, then os.replace raised ENOTDIR (a traceback)."""
    import pandas as pd

    from migue.fusion.reports import write_tensorboard

    history = pd.DataFrame({"epoch": [0, 1], "train_loss": [1.0, 0.5]})
    target = tmp_path / "tensorboard"
    if kind == "file":
        target.write_text("mine")
    else:
        (tmp_path / "elsewhere").mkdir()
        target.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match=rf"^{target}: not a folder \(a {kind}\); TensorBoard events go in a "
                                         r"folder of that name"):
        write_tensorboard(history, target)
    assert target.is_symlink() if kind == "link" else target.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["tensorboard"] + (["elsewhere"] if kind == "link"
                                                                                    else []))


def test_a_tensorboard_folder_is_replaced_whole(tmp_path):
    import pandas as pd

    from migue.fusion.reports import write_tensorboard

    target = tmp_path / "tensorboard"
    target.mkdir()
    (target / "old").write_text("old events")
    assert write_tensorboard(pd.DataFrame({"epoch": [0], "train_loss": [1.0]}), target)
    assert target.is_dir() and not (target / "old").exists() and any(target.iterdir())
    assert [p.name for p in tmp_path.iterdir()] == ["tensorboard"]
