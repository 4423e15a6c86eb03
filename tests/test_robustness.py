"""Crashes, concurrent runs, corrupt files, full disks and untrusted checkpoints: nothing lost,
nothing doubled, nothing stale, and every failure a one-line error naming its file."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from migue.cache import (DiskFullError, EntryReader, FeatureStore, WorkClaims, chunk_name, digest_entry,
                         verify_entry)
from migue.cache.checksums import file_checksums
from migue.common.files import file_sha256
from migue.fusion import config_for, train_run
from migue.fusion.reports import jsonable
from migue.fusion.synthetic import write_emotion, write_mg
from migue.pipeline.cli import main
from migue.pipeline.extraction.backbone import entry_config
from migue.pipeline.extraction.extract import ExtractOptions, extract
from migue.pipeline.extraction.work import chunks_of

ROOT = Path(__file__).resolve().parents[1]
MIGUE = str(Path(sys.executable).with_name("migue"))
TINY = {"width": 32, "depth": 1, "num_heads": 2, "epochs": 6, "lr": 3e-3, "warmup_epochs": 0.5}
TINY_ARGS = ["--set", "width=32", "--set", "depth=1", "--set", "num_heads=2", "--set", "lr=0.003",
             "--set", "warmup_epochs=0.5"]


def _subset(manifest, videos: int = 2):
    """The manifest cut to a few videos' units: a small, fast, still real extraction."""
    keep = set(sorted(manifest.videos)[:videos])
    return dataclasses.replace(manifest, units=[u for u in manifest.units if u.video_id in keep])


def _pose(**kw):
    return ExtractOptions(modality="pose", frames=16, batch_size=4, workers=0, shard_size=4, **kw)


def _cli(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def _one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def mg_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("mg-cache")
    write_mg(root, signal=0.3)
    return root


# ---- 1. kills ---------------------------------------------------------------------------------
def _kill_script():
    spec = importlib.util.spec_from_file_location("kill_test", ROOT / "scripts" / "kill_test.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_sigkilled_extraction_resumes_to_the_uninterrupted_cache(sample_dir, tmp_path):
    """scripts/kill_test.py with 3 kills (the script itself defaults to 20), over the session sample."""
    result = _kill_script().run_kill_test(tmp_path, kills=3, seed=1, shard_size=16, say=lambda *_: None,
                                          data=sample_dir)
    assert result.ok, result.problems
    assert result.kills == 3 and result.digest == result.reference_digest and result.bytes_compared > 0
    assert 0 <= result.units_recomputed <= result.in_flight_bound


def test_a_killed_runs_leftovers_are_cleaned_by_the_next_run(manifest, tmp_path):
    small = _subset(manifest, 1)
    first = extract(small, FeatureStore(tmp_path), _pose())
    entry = first.entry
    shards = sorted(entry.glob("shard-*.h5"))
    # What a SIGKILL leaves: a half-written temp shard, a temp index, a published shard the
    # index does not list yet, and a claim file.
    (entry / ".tmp-999999999-shard-9.h5").write_bytes(b"\x89HDF half")
    (entry / ".tmp-index.json-999999999").write_text("{")
    index = json.loads((entry / "index.json").read_text())
    dropped = index["shards"].pop()
    (entry / "index.json").write_text(json.dumps(index))
    WorkClaims(entry).try_claim("chunk-dead")._handle.close()
    again = extract(small, FeatureStore(tmp_path), _pose())
    assert again.extracted == 0 and again.done_before == first.extracted  # adopted, not recomputed
    assert not list(entry.glob(".tmp-*")) and sorted(entry.glob("shard-*.h5")) == shards
    assert dropped["file"] in {s["file"] for s in json.loads((entry / "index.json").read_text())["shards"]}
    result = _cli("cache", "gc", "--cache", tmp_path)
    assert result.exit_code == 0 and "1 claim files" in result.output
    assert verify_entry(entry).ok and not verify_entry(entry).warnings


# ---- 2. two runs at once ----------------------------------------------------------------------
def test_a_chunk_another_run_holds_is_left_to_it_then_taken_over(manifest, tmp_path):
    small = _subset(manifest, 1)
    opts = _pose()
    config = entry_config(opts, "fp32", small)
    entry = FeatureStore(tmp_path).entry_dir(config)
    entry.mkdir(parents=True)
    chunks = chunks_of(small.of_kind("mg"), opts.shard_size)
    held = WorkClaims(entry).try_claim(chunk_name([u.unit_id for u in chunks[0]]))
    # "The other run" dies after a while without publishing: its claim goes, the chunk is ours.
    threading.Timer(3.0, held.release).start()
    report = extract(small, FeatureStore(tmp_path), opts)
    assert report.extracted == len(small.of_kind("mg")) and report.entry == entry
    reader = EntryReader(entry)
    assert reader.units["unit_id"].tolist()[-len(chunks[0]):] == [u.unit_id for u in chunks[0]]  # last
    assert verify_entry(entry).ok


@pytest.mark.slow
def test_two_extract_processes_split_the_work(sample_dir, tmp_path):
    args = [MIGUE, "-v", "extract", "--modality", "pose", "--data", sample_dir, "--cache", tmp_path,
            "--frames", "16", "--shard-size", "8", "--batch-size", "4", "--workers", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=env) for _ in range(2)]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    extracted = [int(line.split()[1]) for out in outputs for line in out.splitlines()
                 if line.startswith("pose: ") and " extracted" in line]
    (entry,) = [p.parent for p in tmp_path.glob("*/index.json")]
    report = verify_entry(entry)
    assert report.ok and report.units == 144
    assert sum(extracted) == 144 and min(extracted) > 0, extracted  # split, nothing computed twice
    assert all("skipped a shard" not in out and "Traceback" not in out for out in outputs)


# ---- 3. verify, and training refuses bad shards by name ------------------------------------------
def _bad_copy(mg_cache, tmp_path, how):
    root = tmp_path / "cache"
    shutil.copytree(mg_cache, root)
    entry = next(p for p in root.iterdir() if p.name.startswith("pose"))
    index = json.loads((entry / "index.json").read_text())
    shard = entry / index["shards"][0]["file"]
    if how == "flip":
        data = bytearray(shard.read_bytes())
        data[-64] ^= 0xFF
        shard.write_bytes(bytes(data))
    elif how == "truncate":
        shard.write_bytes(shard.read_bytes()[:4096])
    elif how == "missing":
        shard.unlink()
    elif how == "garbage":  # random bytes, same length: the index's size matches
        shard.write_bytes(np.random.default_rng(0).bytes(shard.stat().st_size))
    elif how == "offsets":  # a crafted but well-formed HDF5: offsets past the tokens
        with h5py.File(shard, "r+") as f:
            f["streams/joint/offsets"][1] = 10**6
        index["shards"][0].update(bytes=shard.stat().st_size, **file_checksums(shard))  # past the checksum check
        (entry / "index.json").write_text(json.dumps(index))
    return root, entry, shard


def test_verify_cli_names_each_bad_shard(mg_cache, tmp_path):
    root, entry, flipped = _bad_copy(mg_cache, tmp_path, "flip")
    index = json.loads((entry / "index.json").read_text())
    truncated = entry / index["shards"][1]["file"]
    truncated.write_bytes(truncated.read_bytes()[:100])
    rgb = next(p for p in root.iterdir() if p.name.startswith("rgb"))
    missing = rgb / json.loads((rgb / "index.json").read_text())["shards"][0]["file"]
    missing.unlink()
    result = _cli("cache", "verify", "--cache", root)
    assert result.exit_code == 1
    assert f"bad shard {flipped.name}: SHA-256 differs" in result.output
    assert f"bad shard {truncated.name}: truncated: 100 bytes" in result.output
    assert f"bad shard {missing.name}: missing" in result.output
    assert "2 entries failed verification" in result.output
    assert _cli("cache", "verify", "--cache", mg_cache).exit_code == 0


@pytest.mark.parametrize("how", ["truncate", "missing", "garbage", "offsets"])
def test_training_refuses_a_bad_shard_naming_it(mg_cache, tmp_path, how):
    root, entry, shard = _bad_copy(mg_cache, tmp_path, how)
    result = _cli("fuse-train", "--task", "mg", "--cache", root, "--out", tmp_path / "run", "--epochs", 1,
                  *TINY_ARGS)
    _one_line_error(result, shard.name, entry.name)


def test_verbose_shows_the_traceback(mg_cache, tmp_path):
    root, _, shard = _bad_copy(mg_cache, tmp_path, "offsets")
    result = _cli("-v", "fuse-train", "--task", "mg", "--cache", root, "--out", tmp_path / "run", "--epochs", 1)
    assert result.exit_code == 2 and "Traceback" in result.output and "error: " in result.output


def test_digest_cli_matches_between_copies_and_gc_reports(mg_cache, tmp_path):
    entry = next(p.name for p in mg_cache.iterdir() if p.name.startswith("rgb"))
    shutil.copytree(mg_cache, tmp_path / "copy")
    first = _cli("cache", "digest", entry, "--cache", mg_cache)
    second = _cli("cache", "digest", entry, "--cache", tmp_path / "copy")
    assert first.exit_code == 0 and first.output == second.output
    assert first.output.split()[0] == digest_entry(mg_cache / entry).entry
    assert "tokens" in first.output and "cls" in first.output
    _one_line_error(_cli("cache", "digest", "no-such-entry", "--cache", mg_cache), "no-such-entry")


# ---- 4. never stale ---------------------------------------------------------------------------
def test_fuse_train_refuses_entries_of_different_manifests(tmp_path):
    write_mg(tmp_path, drop_pose_units=3)
    result = _cli("fuse-train", "--task", "mg", "--cache", tmp_path, "--out", tmp_path / "run", "--epochs", 1)
    _one_line_error(result, "do not align", "only in")


def test_what_shapes_the_numbers_selects_another_entry(manifest, tmp_path):
    from migue.extractors.agcn import AGCNExtractor

    small = _subset(manifest, 1)

    def entry_of(opts):
        return FeatureStore(tmp_path).entry_dir(entry_config(opts, "fp32", small)).name

    raw = AGCNExtractor(frames=16)
    paths = []
    for name, module in (("joint", raw.joint), ("bone", raw.bone), ("bone2", raw.bone)):
        state = {f"backbone.{k}": v.clone() for k, v in module.state_dict().items()}
        if name == "bone2":  # the same weights but one
            state[next(k for k in state if k.endswith(".weight"))] += 1
        torch.save({"state_dict": state}, tmp_path / f"{name}.pth")
        paths.append(str(tmp_path / f"{name}.pth"))
    rgb = dict(modality="rgb", arch="tiny", frames=8, size=64)
    names = [
        entry_of(ExtractOptions(**rgb)),
        entry_of(ExtractOptions(**{**rgb, "arch": "small"})),
        entry_of(ExtractOptions(**{**rgb, "size": 96})),
        entry_of(ExtractOptions(**{**rgb, "frames": 16})),
        entry_of(ExtractOptions(modality="pose", frames=16)),
        entry_of(ExtractOptions(modality="pose", frames=16, layout="coco")),
        entry_of(ExtractOptions(modality="pose", frames=16, checkpoints=(paths[0], paths[1]))),
        entry_of(ExtractOptions(modality="pose", frames=16, checkpoints=(paths[0], paths[2]))),
    ]
    assert len(set(names)) == len(names), names
    assert entry_of(ExtractOptions(**rgb)) == names[0]  # and the same settings give the same entry


# ---- 5. disk full -----------------------------------------------------------------------------
def _mount(path: Path, size: str, remount: bool = False) -> subprocess.CompletedProcess:
    options = f"remount,size={size}" if remount else f"size={size}"
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True,
                          text=True)


def test_a_full_disk_stops_cleanly_and_resumes_when_space_is_freed(manifest, tmp_path):
    small = _subset(manifest, 2)
    root = tmp_path / "small-disk"
    root.mkdir()
    mounted = _mount(root, "1m")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a 1 MB tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        (tmp_path / "parsed").mkdir()
        (root / "parsed").symlink_to(tmp_path / "parsed")  # the parsed skeletons live elsewhere
        with pytest.raises(DiskFullError) as caught:
            extract(small, FeatureStore(root), _pose())
        message = str(caught.value)
        assert "no space left on device for cache entry pose-" in message and "free of" in message
        (entry,) = [p.parent for p in root.glob("*/index.json")]
        assert entry.name in message
        assert not list(entry.glob(".tmp-*")), "a half-written shard was left behind"
        before = verify_entry(entry)
        assert before.ok and 0 < before.units < len(small.of_kind("mg"))
        assert set(EntryReader(entry).units["unit_id"]) <= {u.unit_id for u in small.of_kind("mg")}
        assert _mount(root, "16m", remount=True).returncode == 0  # space freed
        report = extract(small, FeatureStore(root), _pose())
        assert report.done_before == before.units and report.extracted == len(small.of_kind("mg")) - before.units
        after = verify_entry(entry)
        assert after.ok and after.units == len(small.of_kind("mg"))
    finally:
        subprocess.run(["umount", str(root)], capture_output=True)


def test_disk_full_is_a_one_line_cli_error(monkeypatch, sample_dir, tmp_path):
    import migue.pipeline.extraction.onepass as executor

    def full(*_, **__):
        from migue.cache.diskfull import disk_full

        raise disk_full(tmp_path / "pose-agcn-x", OSError(28, "No space left on device"), 10**6)

    monkeypatch.setattr(executor, "execute_plan", full)
    result = _cli("extract", "--modality", "pose", "--data", sample_dir, "--cache", tmp_path)
    _one_line_error(result, "no space left on device for cache entry pose-agcn-x", "1.0 MB")


# ---- 6. untrusted files -----------------------------------------------------------------------
class _RunsCode:
    """Unpickling this creates a file: what a malicious checkpoint could do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_checkpoints_load_weights_only_unless_trusted(sample_dir, tmp_path):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "meta": _RunsCode(marker)}, evil)
    args = ["extract", "--modality", "pose", "--data", sample_dir, "--cache", tmp_path / "cache",
            "--checkpoint", evil, "--checkpoint", evil]
    refused = _cli(*args)
    assert refused.exit_code != 0 and "Traceback" not in refused.output
    assert "--trust-checkpoint" in refused.output and not marker.exists()
    trusted = _cli(*args, "--trust-checkpoint")
    assert marker.exists()  # full pickle ran the file's code: why it takes the flag
    assert trusted.exit_code != 0 and "Traceback" not in trusted.output  # and its empty state_dict is refused
    assert "pickle" in _cli("extract", "--help").output


def test_a_crafted_skeleton_workbook_is_a_clear_error(sample_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(sample_dir, data)
    victim = sorted(data.rglob("*_openpose.xlsx"))[0]
    victim.write_bytes(b"PK\x03\x04" + np.random.default_rng(0).bytes(3000))  # a zip header, then junk
    result = _cli("data", "check", data, env={"MIGUE_CACHE": str(tmp_path / "cache")})
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert victim.name in result.output


# ---- 7. training interrupted ------------------------------------------------------------------
class _Killed(BaseException):
    pass


def _train_killed_after(monkeypatch, task, stores, out, config, epoch):
    import migue.fusion.runs as train_module

    save = train_module._save_checkpoint

    def save_then_die(path, state):
        save(path, state)
        if state["epoch"] == epoch:
            raise _Killed

    monkeypatch.setattr(train_module, "_save_checkpoint", save_then_die)
    with pytest.raises(_Killed):
        train_run(task, stores, out, config)
    monkeypatch.setattr(train_module, "_save_checkpoint", save)


@pytest.mark.parametrize(("task", "extra"), [
    ("mg", {"head": "cmtf", "modality_dropout": 0.3, "class_balance": "sampler"}),
    ("emotion", {"head": "interfusion", "batch_size": 8}),
])
def test_resumed_training_gives_the_uninterrupted_metrics(monkeypatch, tmp_path, task, extra):
    torch.set_num_threads(1)
    stores = (write_mg if task == "mg" else write_emotion)(tmp_path / "cache", signal=0.3)
    config = {**TINY, **extra}
    train_run(task, stores, tmp_path / "whole", config)
    _train_killed_after(monkeypatch, task, stores, tmp_path / "resumed", config, epoch=3)
    assert not (tmp_path / "resumed" / "metrics.json").exists()
    train_run(task, stores, tmp_path / "resumed", {**config, "resume": True})
    assert (tmp_path / "resumed" / "metrics.json").read_bytes() == (tmp_path / "whole" / "metrics.json").read_bytes()
    whole, resumed = (pd.read_csv(tmp_path / d / "history.csv").drop(columns="seconds") for d in ("whole", "resumed"))
    pd.testing.assert_frame_equal(whole, resumed)
    a, b = (torch.load(tmp_path / d / "head.pt", weights_only=True)["state_dict"] for d in ("whole", "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_after_early_stop_and_with_other_settings(monkeypatch, tmp_path):
    stores = write_mg(tmp_path / "cache", signal=0.3)
    config = {**config_for("mg", "probe-linear-rgb", TINY), "lr": 0.0, "patience": 2, "epochs": 30}
    first = train_run("mg", stores, tmp_path / "run", config)
    assert first["epochs_run"] == 3
    again = train_run("mg", stores, tmp_path / "run", {**config, "resume": True})  # nothing left to run
    assert jsonable(again) == jsonable(first)
    with pytest.raises(ValueError, match="config differs.*lr"):
        train_run("mg", stores, tmp_path / "run", {**config, "lr": 1e-3, "resume": True})
    fresh = train_run("mg", stores, tmp_path / "new", {**config, "resume": True})  # no checkpoint yet
    assert jsonable(fresh) == jsonable(first)


@pytest.mark.slow
def test_sigkilled_fuse_train_resumes_to_the_same_metrics(mg_cache, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    args = lambda out: [MIGUE, "fuse-train", "--task", "mg", "--cache", str(mg_cache), "--out", str(out),  # noqa: E731
                        "--epochs", "40", "--set", "patience=0", *TINY_ARGS]
    subprocess.run(args(tmp_path / "whole"), check=True, capture_output=True, env=env, timeout=600)
    proc = subprocess.Popen(args(tmp_path / "killed"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env, start_new_session=True)
    checkpoint = tmp_path / "killed" / "checkpoint.pt"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if checkpoint.exists() and torch.load(checkpoint, weights_only=True)["epoch"] >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "metrics.json").exists()
    subprocess.run(args(tmp_path / "killed") + ["--resume"], check=True, capture_output=True, env=env, timeout=600)
    assert (tmp_path / "killed" / "metrics.json").read_bytes() == (tmp_path / "whole" / "metrics.json").read_bytes()
