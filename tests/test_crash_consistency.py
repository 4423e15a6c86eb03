"""Crash consistency: markers written last and validated, injected disk-full (no root needed),
liveness of temp files by flock, retired shards that can never come back."""
from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from migue.cache import DiskFullError, EntryReader, EntryWriter, collect_garbage, collect_parsed, verify_entry
from migue.cache import atomic
from migue.fusion.synthetic import write_mg

CONFIG = {"modality": "pose", "streams": {"pooled": {"tokens": 2, "dim": 4}}}


def _units(*ids):
    return {"unit_id": list(ids)}


def _tokens(n, value=1.0):
    return {"pooled": [np.full((2, 4), value + i, np.float32) for i in range(n)]}


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp-"))


# ---- ablate: a run counts as done only by its marker --------------------------------------------
@pytest.mark.slow
def test_ablate_reruns_runs_killed_while_writing_results(tmp_path, dask_cluster):
    """Old code: a torn metrics.json crashed every rerun (JSONDecodeError naming no file), and a
    run killed after metrics.json but before its plots counted as done."""
    from migue.pipeline.orchestration.ablate import Grid, run_ablation

    cache = tmp_path / "cache"
    write_mg(cache, per_class=(4, 1, 1))
    grid = Grid(task="mg", base={"epochs": 2, "batch_size": 64},
                axes={"head": ["probe-linear-rgb"], "seed": [0, 1, 2]})
    out = tmp_path / "abl"
    run_ablation(grid, cache, out, scheduler=dask_cluster.scheduler_address)
    torn, unplotted, good = sorted((out / "runs").iterdir())
    torn_metrics = torn / "metrics.json"
    torn_metrics.write_bytes(torn_metrics.read_bytes()[:40])   # killed while writing metrics.json
    (unplotted / "done.json").unlink()                          # killed after metrics, before the plots
    (unplotted / "confusion.png").unlink()
    stamp = (good / "metrics.json").stat().st_mtime_ns
    table = run_ablation(grid, cache, out, scheduler=dask_cluster.scheduler_address)
    assert (table["status"] == "ok").all(), table[["run", "error"]]
    assert json.loads(torn_metrics.read_text())["task"] == "mg"
    assert (unplotted / "confusion.png").exists() and (unplotted / "done.json").exists()
    assert (good / "metrics.json").stat().st_mtime_ns == stamp  # the finished run was not rerun


def test_a_marker_over_another_metrics_file_does_not_count(tmp_path):
    from migue.fusion.reports import finished_metrics, mark_done, write_json

    write_json(tmp_path / "metrics.json", {"task": "mg", "test": {}})
    assert finished_metrics(tmp_path) is None  # no marker yet
    mark_done(tmp_path)
    assert finished_metrics(tmp_path) == {"task": "mg", "test": {}}
    (tmp_path / "metrics.json").write_text('{"task": "mg", "te')  # torn after the marker
    assert finished_metrics(tmp_path) is None
    (tmp_path / "done.json").write_text("{not json")
    assert finished_metrics(tmp_path) is None


# ---- disk full, injected ----------------------------------------------------------------------
def _enospc(*_args, **_kw):
    raise OSError(errno.ENOSPC, "No space left on device (injected)")


def test_enospc_in_the_shard_writer_leaves_nothing_and_resumes(tmp_path, monkeypatch):
    import migue.cache.writer as writer_module

    writer = EntryWriter(tmp_path / "e", CONFIG)
    writer.write(_units("a"), _tokens(1))
    index_before = (writer.dir / "index.json").read_bytes()
    real = writer_module.write_shard

    def half_then_full(path, *args, **kw):
        with open(path, "wb") as f:
            f.write(b"\x89HDF\r\n\x1a\n half a shard")
        _enospc()

    monkeypatch.setattr(writer_module, "write_shard", half_then_full)
    with pytest.raises(DiskFullError, match="e"):
        writer.write(_units("b", "c"), _tokens(2))
    assert _leftovers(writer.dir) == [] and len(list(writer.dir.glob("shard-*.h5"))) == 1
    assert (writer.dir / "index.json").read_bytes() == index_before
    monkeypatch.setattr(writer_module, "write_shard", real)
    writer.write(_units("b", "c"), _tokens(2))
    assert writer.done_units() == {"a", "b", "c"} and verify_entry(writer.dir).ok


def test_enospc_in_the_index_update_leaves_the_old_index_and_resumes(tmp_path, monkeypatch):
    writer = EntryWriter(tmp_path / "e", CONFIG)
    writer.write(_units("a"), _tokens(1))
    index_before = (writer.dir / "index.json").read_bytes()
    real = atomic.write_all

    def half_then_full(fd, data):
        real(fd, bytes(data)[: len(data) // 2])
        _enospc()

    monkeypatch.setattr(atomic, "write_all", half_then_full)
    with pytest.raises(DiskFullError):
        writer.write(_units("b"), _tokens(1, 5.0))
    assert (writer.dir / "index.json").read_bytes() == index_before  # old index whole, not half
    assert _leftovers(writer.dir) == []
    monkeypatch.setattr(atomic, "write_all", real)
    again = EntryWriter(writer.dir, CONFIG)  # adopts the shard published before the index failed
    assert again.done_units() == {"a", "b"} and verify_entry(writer.dir).ok


def test_enospc_in_the_run_folder_leaves_no_half_metrics(tmp_path, monkeypatch):
    from migue.fusion.reports import finished_metrics, write_json

    write_json(tmp_path / "metrics.json", {"old": 1})
    real = atomic.write_all

    def half_then_full(fd, data):
        real(fd, bytes(data)[:5])
        _enospc()

    monkeypatch.setattr(atomic, "write_all", half_then_full)
    with pytest.raises(OSError) as info:
        write_json(tmp_path / "metrics.json", {"new": 2, "pad": "x" * 100})
    assert info.value.errno == errno.ENOSPC
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"old": 1}
    assert _leftovers(tmp_path) == [] and finished_metrics(tmp_path) is None


# ---- parsed skeletons ---------------------------------------------------------------------------
def test_a_torn_parsed_skeleton_is_parsed_again_with_a_note_and_swept_by_gc(tmp_path, caplog):
    from migue.pipeline.datasets.skeleton import parse_skeleton
    from migue.synth.sample import _write_xlsx

    sheet = tmp_path / "data" / "3_openpose.xlsx"
    sheet.parent.mkdir()
    values = np.tile(np.arange(411, dtype=np.float64) % 7 + 1, (5, 1))
    _write_xlsx(sheet, values)
    parsed = tmp_path / "cache" / "parsed"
    first = parse_skeleton(sheet, parsed)
    (kept,) = parsed.glob("*.npy")
    kept.write_bytes(kept.read_bytes()[:200])  # a torn write of the old code (no fsync, no check)
    with caplog.at_level(logging.WARNING):
        again = parse_skeleton(sheet, parsed)
    assert np.array_equal(first, again)
    assert any("torn" in r.getMessage() and kept.name in r.getMessage() for r in caplog.records)
    kept.write_bytes(kept.read_bytes()[:200])
    dead = parsed / ".tmp-abc.npy-123"
    dead.write_bytes(b"half")
    old = time.time() - 3600
    os.utime(dead, (old, old))
    removed = dict(collect_parsed(tmp_path / "cache"))
    assert set(removed) == {kept.name, dead.name}
    assert not kept.exists() and not dead.exists()


# ---- liveness by lock -------------------------------------------------------------------------
WRITER = """
import sys, time
from migue.cache.atomic import TempFile
temp = TempFile(sys.argv[1], "shard-live.h5")
print(temp.path, flush=True)
time.sleep(120)
"""


def test_a_live_writers_temp_file_survives_gc_and_another_writer_whatever_its_name(tmp_path):
    """Old code: liveness by pid@host; two containers with one host name and separate PID
    namespaces deleted each other's temp shards. Now a cleaner removes only what it can lock."""
    writer = EntryWriter(tmp_path / "e", CONFIG)
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(writer.dir)], stdout=subprocess.PIPE, text=True)
    try:
        live = writer.dir / os.path.basename(child.stdout.readline().strip())
        assert live.exists()
        dead = writer.dir / f".tmp-{child.pid}@{os.uname().nodename}-shard-dead.h5"  # names a live pid
        dead.write_bytes(b"x")
        EntryWriter(writer.dir, CONFIG)           # a second writer starting on the entry
        assert live.exists(), "a live writer's temp file was removed"
        assert _leftovers(writer.dir) == [live.name]  # the unlocked one went, whatever it names
        dead.write_bytes(b"x")
        assert collect_garbage(writer.dir).temp_files == [dead.name]  # and gc
        assert live.exists()
    finally:
        child.kill()
        child.wait()
    assert collect_garbage(writer.dir).temp_files == [live.name]  # its lock went with the process
    assert _leftovers(writer.dir) == []


def test_two_writer_processes_publish_without_losing_each_others_work(tmp_path):
    entry = tmp_path / "e"
    EntryWriter(entry, CONFIG)
    code = textwrap.dedent(f"""
        import sys, numpy as np
        from migue.cache import EntryWriter
        w = EntryWriter({str(entry)!r}, {CONFIG!r})
        for k in range(6):
            w.write({{"unit_id": [f"{{sys.argv[1]}}{{k}}"]}}, {{"pooled": [np.ones((2, 4), np.float32)]}})
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, name]) for name in "xy"]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert EntryWriter(entry, CONFIG).done_units() == {f"{n}{k}" for n in "xy" for k in range(6)}
    assert verify_entry(entry).ok and _leftovers(entry) == []


# ---- retired shards ----------------------------------------------------------------------------
def test_a_retired_shard_left_by_a_crash_is_never_adopted(tmp_path):
    writer = EntryWriter(tmp_path / "e", CONFIG)
    old = writer.write(_units("a", "b"), _tokens(2))
    saved = old.read_bytes()
    assert writer.retire({"a", "b"}) == 2
    old.write_bytes(saved)  # as if killed after the index write, before the unlink
    again = EntryWriter(writer.dir, CONFIG)
    assert again.done_units() == set()
    report = collect_garbage(writer.dir)
    assert [n for n, _ in report.orphans] == [old.name] and not old.exists()
    writer.write(_units("c"), _tokens(1))
    writer.retire({"nothing"})
    keep = writer.write(_units("d", "e"), _tokens(2, 9.0))
    assert writer.retire({"d"}) == 1 and not keep.exists()
    reader = EntryReader(writer.dir)
    assert sorted(reader.units["unit_id"]) == ["c", "e"]
    row = int(np.flatnonzero(reader.units["unit_id"] == "e")[0])
    assert np.array_equal(reader.read("pooled", [row])[0], np.full((2, 4), 10.0, np.float16))
