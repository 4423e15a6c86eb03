"""`migue cache ls` and `migue cache rm` (issue 24 point 4): what an entry is, whether it is complete,
and removing it atomically. The entry is made by a pose extract of the smallest pack dataset (6 units:
2 clips in each of train/val/test); the incomplete ones are made by hand from a copy of it."""
from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import write_small_packs
from migue.pipeline.cli import main

UNITS = 6  # write_small_packs: 2 clips per split, 3 splits


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, Path]:
    """(cache root, its one pose entry) from `migue extract --modality pose --frames 16` on the packs."""
    root = tmp_path_factory.mktemp("cachecli")
    (root / "packs").mkdir()
    packs = write_small_packs(root / "packs")
    cache = root / "cache"
    result = CliRunner().invoke(main, ["extract", "--modality", "pose", "--data", str(packs), "--cache", str(cache),
                                       "--frames", "16", "--workers", "0"])
    assert result.exit_code == 0, result.output
    (entry,) = [p for p in cache.iterdir() if p.name.startswith("pose-")]
    return cache, entry


@pytest.fixture
def cache(made, tmp_path) -> tuple[Path, Path]:
    """A copy of the made cache this test may change."""
    src_cache, src_entry = made
    shutil.copytree(src_cache, tmp_path / "cache")
    return tmp_path / "cache", tmp_path / "cache" / src_entry.name


def ls(cache: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["cache", "ls", "--cache", str(cache), *args])
    assert result.exit_code == 0, result.output
    if not args:  # the table: no wider than 120 columns (--long keeps names and paths whole, --json is data)
        assert all(len(line) <= 120 for line in result.output.splitlines()), result.output
    return result.output


def edit_index(entry: Path, change) -> None:
    index = json.loads((entry / "index.json").read_text())
    change(index)
    (entry / "index.json").write_text(json.dumps(index))


def file_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_ls_shows_what_the_entry_is(cache):
    root, entry = cache
    out = ls(root)
    header, row, total = out.splitlines()
    assert header.split() == ["entry", "modality", "backbone/arch", "frames", "size", "units", "status", "MB",
                              "dataset"]
    assert row.split()[:8] == [entry.name, "pose", "agcn/imigue22", "16", "-", "6/6", "complete",
                               f"{file_bytes(entry) / 1e6:.2f}"]
    assert row.endswith("packs")  # the folder its extract read
    assert total.startswith("1 entry in ")


def test_ls_json_has_every_field(cache):
    root, entry = cache
    (row,) = json.loads(ls(root, "--json"))
    shards = json.loads((entry / "index.json").read_text())["shards"]
    shard_bytes = sum(s["bytes"] for s in shards)
    assert (row["name"], row["modality"], row["backbone"], row["arch"]) == (entry.name, "pose", "agcn", "imigue22")
    assert (row["frames"], row["size"], row["units"], row["wanted"], row["failed"], row["shards"]) == \
        (16, None, UNITS, UNITS, 0, len(shards))
    assert row["complete"] is True and row["why"] == ""
    assert row["disk_bytes"] > shard_bytes  # the shard, the index and the lock files
    assert row["disk_bytes"] == file_bytes(entry)
    assert row["dataset"][0].endswith("packs") and row["layout"] == "stgcn"


def test_interrupted_before_first_shard_is_incomplete_not_empty(cache):
    root, entry = cache
    edit_index(entry, lambda index: index.update(shards=[]))  # the run recorded its dataset, then died
    for shard in entry.glob("shard-*.h5"):
        shard.unlink()
    out = ls(root)
    row = out.splitlines()[1].split()
    assert row[5:7] == ["0/6", "incomplete"]
    assert "incomplete: interrupted before its first shard" in out
    assert json.loads(ls(root, "--json"))[0]["complete"] is False


def test_fewer_units_than_asked_is_incomplete(cache):
    root, entry = cache
    edit_index(entry, lambda index: index["dataset"]["units"].append("9_9"))  # asked for one more unit
    out = ls(root)
    assert out.splitlines()[1].split()[5:7] == ["6/7", "incomplete"]
    assert "1 of the 7 units its last extract asked for are neither published nor failed" in out
    # a unit recorded as failed counts as done: the entry is complete, with the failure counted
    edit_index(entry, lambda index: index["failures"].update({"9_9": "unreadable video"}))
    (row,) = json.loads(ls(root, "--json"))
    assert (row["complete"], row["units"], row["wanted"], row["failed"]) == (True, 6, 7, 1)


def _hold(path: Path):
    """Hold `path`'s flock as a live run does (a writer mark or a chunk claim)."""
    path.parent.mkdir(exist_ok=True)
    handle = open(path, "a+")
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return handle


@pytest.mark.parametrize("mark", ["writers/1-abcd.lock", "claims/chunk-0123.lock"])
def test_an_entry_being_written_is_incomplete_and_not_removed(cache, mark):
    root, entry = cache
    handle = _hold(entry / mark)
    try:
        out = ls(root)
        assert out.splitlines()[1].split()[6] == "incomplete" and "being written now" in out
        result = CliRunner().invoke(main, ["cache", "rm", entry.name, "--cache", str(root)])
        assert result.exit_code == 2 and "is being written" in result.output, result.output
        assert (entry / "index.json").exists()
    finally:
        handle.close()
    assert "6/6" in ls(root) and "complete" in ls(root).splitlines()[1].split()  # a dead mark is no writer


def test_rm_dry_run_then_rm(cache):
    root, entry = cache
    size, files = file_bytes(entry), sum(1 for p in entry.rglob("*") if p.is_file())
    result = CliRunner().invoke(main, ["cache", "rm", entry.name, "--cache", str(root), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert f"would remove {entry.name}: {files} files, {size} bytes" in result.output
    assert (entry / "index.json").exists()
    result = CliRunner().invoke(main, ["cache", "rm", entry.name, "--cache", str(root)])
    assert result.exit_code == 0, result.output
    assert f"removed {entry.name}: {files} files, {size} bytes" in result.output
    assert not entry.exists() and not list(root.glob(".trash-*"))
    assert ls(root).startswith("no entries")


def test_rm_of_an_unknown_name_removes_nothing(cache):
    root, entry = cache
    result = CliRunner().invoke(main, ["cache", "rm", entry.name, "pose-nosuch", "--cache", str(root)])
    assert result.exit_code == 2 and "no cache entry pose-nosuch" in result.output, result.output
    assert (entry / "index.json").exists()


def test_an_interrupted_rm_never_looks_whole(cache):
    root, entry = cache
    trash = root / f".trash-{entry.name}-0badf00d"  # renamed, crashed before the delete
    os.rename(entry, trash)
    assert ls(root).startswith("no entries")
    result = CliRunner().invoke(main, ["cache", "rm", "--cache", str(root), "pose-nosuch"])
    assert result.exit_code == 2 and trash.exists()  # refused: nothing removed
    shutil.copytree(trash, entry)
    result = CliRunner().invoke(main, ["cache", "rm", "--cache", str(root), entry.name])
    assert result.exit_code == 0 and f"removed {trash.name}" in result.output, result.output
    assert not trash.exists() and not entry.exists()


def test_long_names_are_shortened_in_the_table_only(cache):
    root, entry = cache
    long_name = entry.name + "-with-a-very-long-suffix"
    entry.rename(root / long_name)
    out = ls(root)
    assert long_name not in out and "(names shortened" in out
    assert long_name in ls(root, "--long") and json.loads(ls(root, "--json"))[0]["name"] == long_name


def test_ls_columns_stay_aligned_with_a_dense_entry(tmp_path):
    # 'pose@dense' is wider than the 8 columns 'modality' had: every column after it moved right on its row
    import numpy as np

    from migue.cache import FeatureStore

    store = FeatureStore(tmp_path)
    for kind, backbone in (("dense", "agcn"), ("mg", "mvit")):
        writer = store.writer({"modality": "pose" if kind == "dense" else "rgb", "backbone": backbone,
                               "unit_kind": kind, "dense": {"window": 32, "stride": 8}})
        writer.write({"unit_id": [f"{kind}:1"], "kind": [kind], "split": ["train"]},
                     {"joint" if kind == "dense" else "tokens": [np.zeros((1, 2), np.float32)]})
    header, *rows = ls(tmp_path).splitlines()[:3]
    at = header.index("backbone/arch")
    assert sorted(row[at:].split()[0] for row in rows) == ["agcn", "mvit"], "\n".join([header, *rows])
    assert any(" pose@dense " in row for row in rows)
