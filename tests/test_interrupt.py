"""Stopping a run (issue 24 point 7): TERM or Ctrl-C of `migue extract` stops its decoding workers and
the multiprocessing forkserver (a SIGKILL too, a moment later), and says what was kept and how to
resume. The runs are subprocesses of a tiny extract: context, 4 frames at 32 px, MViTv2 tiny."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from migue.pipeline.cli.interrupt import interrupted_message

MIGUE = str(Path(sys.executable).with_name("migue"))


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    from migue.synth.sample import write_sample

    root = tmp_path_factory.mktemp("rgb")
    write_sample(root, videos=12, frames=260, seed=1, width=64, height=48)
    return root


def _start(sample: Path, cache: Path, log: Path, *extra: str) -> subprocess.Popen:
    cmd = [MIGUE, "extract", "--modality", "context", "--data", str(sample), "--cache", str(cache), "--workers", "2",
           "--size", "32", "--frames", "4", "--arch", "tiny", *extra]
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=_default_sigint)


def _default_sigint() -> None:
    """Ctrl-C as a terminal delivers it: a suite started in the background (`nohup make test &`) runs with
    SIGINT ignored, which its children inherit, so the extract never saw the test's SIGINT (exit 0, or
    still running after the wait: the two fresh-clone CI failures of session 7)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _decode_workers(proc: psutil.Process) -> list[psutil.Process]:
    """The forkserver's children below `proc` (the decoding workers)."""
    tree = proc.children(recursive=True)
    servers = {p.pid for p in tree if "multiprocessing.forkserver" in " ".join(_cmdline(p))}
    return [p for p in tree if _ppid(p) in servers]  # forked by the forkserver (same command line)


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def _ppid(p: psutil.Process) -> int:
    try:
        return p.ppid()
    except psutil.Error:
        return -1


def _running(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def _wait_for(test, what: str, timeout: float = 240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = test()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _tree_when_decoding(proc: subprocess.Popen, log: Path) -> list[psutil.Process]:
    parent = psutil.Process(proc.pid)
    _wait_for(lambda: len(_decode_workers(parent)) >= 2 or proc.poll() is not None, "two decoding workers")
    assert proc.poll() is None, log.read_text()
    return [parent, *parent.children(recursive=True)]


def _all_gone(tree: list[psutil.Process], proc: subprocess.Popen, timeout: float = 10.0) -> None:
    try:
        proc.wait(timeout=timeout)
        _wait_for(lambda: not _running(tree), "the process tree to end", timeout)
    finally:
        for p in _running(tree):  # never leave them behind, whatever the assertion says
            p.kill()


@pytest.mark.parametrize("how", ["TERM", "KILL"])
def test_stopping_extract_ends_its_decoding_workers_and_forkserver(sample, tmp_path, how):
    log = tmp_path / "log.txt"
    proc = _start(sample, tmp_path / "cache", log)
    tree = _tree_when_decoding(proc, log)
    assert any("multiprocessing.forkserver" in " ".join(_cmdline(p)) for p in tree)
    proc.send_signal(signal.SIGTERM if how == "TERM" else signal.SIGKILL)
    _all_gone(tree, proc)
    if how == "TERM":
        assert proc.returncode == 143, log.read_text()
        assert "interrupted (SIGTERM): " in log.read_text() and "run the same command again" in log.read_text()
        assert "Traceback" not in log.read_text()


def test_ctrl_c_says_what_was_kept_and_how_to_resume(sample, tmp_path):
    cache, log = tmp_path / "cache", tmp_path / "log.txt"
    # units heavy enough (~0.1 s each) that the run is still going when Ctrl-C comes: at 32 px all 48 were
    # published within a second and a loaded CI machine signalled a finished run (exit 0); at 224 px x 16
    # frames the forward in flight when the signal came outlasted the 10 s wait on that loaded machine
    proc = _start(sample, cache, log, "--shard-size", "1", "--size", "112", "--frames", "8")

    def published() -> int:
        return sum(sum(s["units"] for s in json.loads(p.read_text())["shards"]) for p in cache.glob("*/index.json"))

    _wait_for(lambda: published() >= 1 or proc.poll() is not None, "a first published shard")
    tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    proc.send_signal(signal.SIGINT)
    _all_gone(tree, proc, timeout=60.0)
    out = log.read_text()
    assert proc.returncode == 130, out
    (entry,) = [p.parent for p in cache.glob("*/index.json")]
    said = re.search(r"interrupted \(Ctrl-C\): (\d+) units published in (\S+) are kept; run the same command "
                     r"again to resume", out)
    assert said, out
    assert said[2] == entry.name and int(said[1]) == published() >= 1  # what the index holds after the exit
    assert "Aborted!" not in out and "Traceback" not in out


def test_fuse_train_says_the_last_epoch_is_kept(tmp_path):
    started = time.time()
    assert interrupted_message("fuse-train", ["--task", "mg", "--out", str(tmp_path)], started) == \
        f"no epoch was completed in {tmp_path}; run the same command again to start over"
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    assert interrupted_message("fuse-train", ["--task", "mg", f"--out={tmp_path}"], started) == \
        (f"the last completed epoch is kept in {tmp_path / 'checkpoint.pt'}; run the same command with --resume "
         "to continue from it")
