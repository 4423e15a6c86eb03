"""Issue 23 case 5: training, evaluation and prediction on an entry that extract is still writing
are refused with a sentence naming the entry, what is still claimed and that extract is running;
`--allow-partial` (partial=True) trains on the published part, saying so."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from migue.cache import EntryBeingWrittenError, WorkClaims, chunk_name
from migue.fusion import config_for, evaluate_run, predict_run, train_run
from migue.fusion.synthetic import write_mg
from migue.pipeline.cli import main

TINY = {"width": 16, "depth": 1, "num_heads": 2, "epochs": 1, "warmup_epochs": 0}
HEAD = "probe-linear-pose-joint"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def stores(tmp_path):
    return write_mg(tmp_path / "cache", per_class=(2, 1, 1), num_classes=4)


def _claim_four(entry_dir):
    """What a running extract holds: a chunk of four units it is computing."""
    ids = [f"pending_{k}" for k in range(4)]
    claim = WorkClaims(entry_dir).try_claim(chunk_name(ids), units=ids)
    assert claim is not None
    return claim


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_training_on_an_entry_with_live_claims_is_refused_naming_what_is_missing(stores, tmp_path, caplog):
    pose = stores["pose"]
    claim = _claim_four(pose.dir)
    try:
        with pytest.raises(EntryBeingWrittenError) as err:
            train_run("mg", stores, tmp_path / "run", config_for("mg", HEAD, TINY))
        message = str(err.value)
        assert pose.name in message and "extract" in message and "4 units" in message
        assert "--allow-partial" in message
        assert not (tmp_path / "run" / "config.json").exists()  # refused before anything was written
        result = _cli("fuse-train", "--task", "mg", "--cache", tmp_path / "cache", "--out", tmp_path / "cli",
                      "--fusion", HEAD, "--epochs", 1)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert pose.name in result.output and "4 units" in result.output
        partial = _cli("fuse-train", "--task", "mg", "--cache", tmp_path / "cache", "--out", tmp_path / "partial",
                       "--fusion", HEAD, "--epochs", 1, "--allow-partial")
        assert partial.exit_code == 0, partial.output
        with caplog.at_level("WARNING", logger="migue"):
            train_run("mg", stores, tmp_path / "api", {**config_for("mg", HEAD, TINY), "allow_partial": True})
        assert any(pose.name in r.getMessage() and "published part" in r.getMessage() for r in caplog.records)
    finally:
        claim.release()
    train_run("mg", stores, tmp_path / "run", config_for("mg", HEAD, TINY))  # once extract is done: trains


def test_evaluate_and_predict_refuse_while_the_entry_is_written(stores, tmp_path):
    run = tmp_path / "run"
    train_run("mg", stores, run, config_for("mg", HEAD, TINY))
    claim = _claim_four(stores["pose"].dir)
    try:
        for call in (evaluate_run, predict_run):
            with pytest.raises(EntryBeingWrittenError, match="4 units"):
                call(run, "test")
        assert len(predict_run(run, "test", partial=True)) > 0
        result = _cli("evaluate", run)
        assert result.exit_code == 2 and stores["pose"].name in result.output, result.output
    finally:
        claim.release()
    assert len(predict_run(run, "test")) > 0


def test_a_live_writer_in_another_process_is_a_running_extract(stores, tmp_path):
    """Before its first claim (fingerprinting, building the model) a run already holds its writer."""
    code = textwrap.dedent(f"""
        import sys
        from migue.cache import EntryReader, EntryWriter
        config = EntryReader({str(stores['pose'].dir)!r}).config
        writer = EntryWriter({str(stores['pose'].dir)!r}, config)
        print("ready", flush=True)
        sys.stdin.readline()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        with pytest.raises(EntryBeingWrittenError, match="extract is running") as err:
            train_run("mg", stores, tmp_path / "run", config_for("mg", HEAD, TINY))
        assert stores["pose"].name in str(err.value)
    finally:
        proc.communicate("\n", timeout=30)
    train_run("mg", stores, tmp_path / "run", config_for("mg", HEAD, TINY))  # the writer is gone


def test_a_full_disk_while_writing_a_claim_is_a_disk_full_error_naming_the_entry(tmp_path, monkeypatch):
    """The claim file holds the chunk's unit ids; a disk that fills while they are written was an OSError
    out of cache/claims.py (the fresh-clone CI's 1 MB tmpfs test hit it), not the DiskFullError every
    other full-disk write gives (one line at the CLI, saying what is kept and how to resume)."""
    import errno

    import migue.cache.claims as claims
    from migue.cache import DiskFullError

    class FullDisk:
        def __init__(self, handle):
            self.handle = handle

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def flush(self):
            raise OSError(errno.ENOSPC, "No space left on device")

    real_open = open
    monkeypatch.setattr(claims, "open", lambda *a, **k: FullDisk(real_open(*a, **k)), raising=False)
    entry = tmp_path / "pose-agcn-x"
    entry.mkdir()
    with pytest.raises(DiskFullError, match="no space left on device for cache entry pose-agcn-x") as caught:
        claims.WorkClaims(entry).try_claim("chunk-1", ["0001:000000-000031"])
    assert "claiming" in str(caught.value)
    monkeypatch.undo()  # space again: the same chunk can be claimed (the failed claim's lock was let go)
    with claims.WorkClaims(entry).try_claim("chunk-1", ["0001:000000-000031"]) as claim:
        assert claim is not None
