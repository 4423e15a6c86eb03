"""The HDF5 feature store: keys, atomic shards, resume, index safety, readers."""
from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

from migue.cache import DuplicateUnitsError, EntryReader, FeatureStore, ShardError, entry_key
from migue.cache.checksums import file_checksums
from migue.cache.index import read_index, write_index
from migue.common.files import file_sha256
from migue.cache.shard import write_shard

CONFIG = {"modality": "rgb", "backbone": "mvit", "arch": "tiny",
          "streams": {"tokens": {"tokens": 4, "dim": 8}, "cls": {"tokens": 1, "dim": 8}}}


def _units(ids):
    ids = list(ids)
    return {"unit_id": ids, "kind": ["mg"] * len(ids), "video_id": ids, "split": ["train"] * len(ids),
            "start": [0] * len(ids), "end": [9] * len(ids), "mg_label": list(range(len(ids)))}


def _streams(ids, seed=0):
    rng = np.random.default_rng(seed)
    return {"tokens": [rng.standard_normal((4, 8)) for _ in ids],
            "cls": [rng.standard_normal((1, 8)) for _ in ids]}


def test_roundtrip_preserves_tokens_and_metadata(tmp_path):
    store = FeatureStore(tmp_path)
    writer = store.writer(CONFIG)
    streams = _streams("abc")
    writer.write(_units("abc"), streams)
    reader = store.reader(store.entries()[0].name)
    assert list(reader.units["unit_id"]) == ["a", "b", "c"]
    assert list(reader.units["mg_label"]) == [0, 1, 2]
    tokens = reader.read("tokens")
    assert tokens.shape == (3, 4, 8) and tokens.dtype == np.float16
    np.testing.assert_allclose(tokens[1], streams["tokens"][1].astype(np.float16))
    np.testing.assert_array_equal(reader.read("cls", [2, 0])[:, 0], reader.read("cls")[[2, 0], 0])


def test_rows_across_shards_come_back_in_asked_order(tmp_path):
    writer = FeatureStore(tmp_path).writer(CONFIG)
    writer.write(_units(["a", "b"]), _streams("ab", 1))
    writer.write(_units(["c"]), _streams("c", 2))
    reader = EntryReader(writer.dir)
    all_tokens = reader.read("tokens")
    np.testing.assert_array_equal(reader.read("tokens", [2, 0, 1]), all_tokens[[2, 0, 1]])
    np.testing.assert_array_equal(reader.to_dask("tokens", units_per_chunk=2).compute(), all_tokens)


def test_reads_keep_no_hdf5_file_open_and_threads_agree(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    store = FeatureStore(tmp_path)
    writer = store.writer(CONFIG)
    expected = {}
    for k in range(6):
        ids = [f"{k}-{i}" for i in range(5)]
        streams = _streams(ids, seed=k)
        writer.write(_units(ids), streams)
        expected.update({u: streams["tokens"][i].astype(np.float16) for i, u in enumerate(ids)})
    reader = store.reader(store.entries()[0].name)
    rows = np.random.default_rng(0).permutation(len(reader))
    with ThreadPoolExecutor(4) as pool:  # the trainer reads ahead on threads
        parts = list(pool.map(lambda r: reader.read("tokens", r), np.array_split(rows, 8)))
    got = np.concatenate(parts)
    for row, tokens in zip(rows, got):
        np.testing.assert_array_equal(tokens, expected[reader.units["unit_id"].iat[row]])
    assert reader._files == {}  # contiguous shards are read with preadv: no HDF5 handle stays open
    np.testing.assert_array_equal(reader.read("cls", [3])[0], reader.read("cls")[3])  # reopens for a new stream


def test_chunked_compressed_shards_from_other_tools_read_the_same(tmp_path):
    import h5py

    store = FeatureStore(tmp_path)
    writer = store.writer(CONFIG)
    writer.write(_units("abcd"), _streams("abcd"))
    reader = store.reader(store.entries()[0].name)
    contiguous = reader.read("tokens", [3, 1])
    shard = next(reader.dir.glob("*.h5"))
    with h5py.File(shard, "a") as f:  # rewrite the tokens chunked and gzip'ed, as another tool might
        data = f["streams/tokens/tokens"][()]
        del f["streams/tokens/tokens"]
        f.create_dataset("streams/tokens/tokens", data=data, chunks=(4, 8), compression="gzip")
    index = read_index(reader.dir)
    index["shards"][0].update(bytes=shard.stat().st_size, **file_checksums(shard))  # its new bytes, recorded
    write_index(reader.dir, index)
    np.testing.assert_array_equal(EntryReader(reader.dir).read("tokens", [3, 1]), contiguous)


def test_publish_leaves_no_temp_files_and_records_checksum(tmp_path):
    writer = FeatureStore(tmp_path).writer(CONFIG)
    path = writer.write(_units("ab"), _streams("ab"))
    assert not [p for p in writer.dir.iterdir() if p.name.startswith(".tmp-")]
    index = json.loads((writer.dir / "index.json").read_text())
    (shard,) = index["shards"]
    assert shard["file"] == path.name and shard["unit_ids"] == ["a", "b"]
    from migue.cache import file_sha256
    assert shard["sha256"] == file_sha256(str(path))


def test_resume_knows_published_units_and_refuses_duplicates(tmp_path):
    store = FeatureStore(tmp_path)
    store.writer(CONFIG).write(_units("ab"), _streams("ab"))
    again = store.writer(CONFIG)  # a new process would do exactly this
    assert again.done_units() == {"a", "b"}
    with pytest.raises(DuplicateUnitsError):
        again.write(_units("bc"), _streams("bc"))
    assert EntryReader(again.dir).units["unit_id"].tolist() == ["a", "b"]


def test_shard_published_but_not_indexed_is_adopted(tmp_path):
    writer = FeatureStore(tmp_path).writer(CONFIG)
    # A writer killed after its rename, before its index update, leaves exactly this behind.
    write_shard(writer.dir / "shard-0000000000000000001-deadbeef.h5", _units("xy"), _streams("xy"))
    assert FeatureStore(tmp_path).writer(CONFIG).done_units() == {"x", "y"}


def test_key_changes_with_any_config_value():
    assert entry_key(CONFIG) == entry_key(json.loads(json.dumps(CONFIG)))
    for change in ({"arch": "small"}, {"precision": "bf16"}, {"weights": {"sha256": ["0" * 64]}}):
        assert entry_key({**CONFIG, **change}) != entry_key(CONFIG)


def test_entry_refuses_a_different_config_in_its_folder(tmp_path):
    writer = FeatureStore(tmp_path).writer(CONFIG)
    from migue.cache import EntryWriter
    with pytest.raises(ValueError, match="refusing to mix"):
        EntryWriter(writer.dir, {**CONFIG, "arch": "small"})


def test_index_naming_a_path_outside_the_entry_is_refused(tmp_path):
    writer = FeatureStore(tmp_path).writer(CONFIG)
    writer.write(_units("a"), _streams("a"))
    index_path = writer.dir / "index.json"
    index = json.loads(index_path.read_text())
    index["shards"][0]["file"] = "../elsewhere.h5"
    index_path.write_text(json.dumps(index))
    with pytest.raises(ValueError, match="refusing path"):
        EntryReader(writer.dir)


def test_missing_shard_is_named(tmp_path):
    writer = FeatureStore(tmp_path).writer(CONFIG)
    path = writer.write(_units("a"), _streams("a"))
    os.unlink(path)
    with pytest.raises(ShardError, match=path.name):
        EntryReader(writer.dir)


def test_failures_are_recorded_then_cleared_when_published(tmp_path):
    writer = FeatureStore(tmp_path).writer(CONFIG)
    writer.record_failures({"a": "VideoError: cannot decode"})
    assert writer.failures() == {"a": "VideoError: cannot decode"}
    writer.write(_units("a"), _streams("a"))
    assert writer.failures() == {}


def test_reader_pickles_without_open_files(tmp_path):
    writer = FeatureStore(tmp_path).writer(CONFIG)
    writer.write(_units("ab"), _streams("ab"))
    reader = EntryReader(writer.dir)
    first = reader.read("tokens")
    clone = pickle.loads(pickle.dumps(reader))  # what a DataLoader/Dask worker receives
    np.testing.assert_array_equal(clone.read("tokens"), first)


def test_cache_root_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MIGUE_CACHE", str(tmp_path / "x"))
    assert FeatureStore().root == tmp_path / "x"
    assert FeatureStore(tmp_path / "y").root == tmp_path / "y"


# ---- robustness: verify, digest, gc, temp files, claims, index format ---------------------------
from migue.cache import (  # noqa: E402
    IndexFormatError, WorkClaims, collect_garbage, digest_entry, verify_entry)
from migue.cache.atomic import TempFile  # noqa: E402


def test_digest_ignores_shard_layout_and_order_but_not_one_bit(tmp_path):
    streams = _streams("abcd", 3)
    one = FeatureStore(tmp_path / "one").writer(CONFIG)
    one.write(_units("abcd"), streams)
    two = FeatureStore(tmp_path / "two").writer(CONFIG)
    pick = lambda idx: {k: [v[i] for i in idx] for k, v in streams.items()}  # noqa: E731
    two.write(_units("dc"), pick([3, 2]))
    two.write(_units("ba"), pick([1, 0]))
    assert digest_entry(one.dir) == digest_entry(two.dir)
    changed = {k: [a.copy() for a in v] for k, v in streams.items()}
    changed["cls"][2] = changed["cls"][2].astype(np.float16)
    changed["cls"][2].view(np.uint16)[0, 0] ^= 1  # one bit of one unit of one stream
    three = FeatureStore(tmp_path / "three").writer(CONFIG)
    three.write(_units("abcd"), changed)
    d1, d3 = digest_entry(one.dir), digest_entry(three.dir)
    assert d1.entry != d3.entry and d1.streams["tokens"] == d3.streams["tokens"]
    assert d1.streams["cls"] != d3.streams["cls"] and d1.unit_ids == d3.unit_ids


def test_verify_names_flipped_truncated_and_missing_shards(tmp_path):
    writer = FeatureStore(tmp_path).writer(CONFIG)
    paths = [writer.write(_units([f"{c}{i}" for i in range(3)]), _streams("xyz", i)) for i, c in enumerate("pqrs")]
    assert verify_entry(writer.dir).ok and verify_entry(writer.dir).units == 12
    data = bytearray(paths[0].read_bytes())
    data[len(data) - 100] ^= 0x01
    paths[0].write_bytes(bytes(data))
    paths[1].write_bytes(paths[1].read_bytes()[:500])
    paths[2].unlink()
    report = verify_entry(writer.dir)
    assert not report.ok and report.units == 3
    text = "\n".join(report.problems)
    assert f"{paths[0].name}: SHA-256 differs" in text
    assert f"{paths[1].name}: truncated: 500 bytes" in text
    assert f"{paths[2].name}: missing" in text


def test_reader_refuses_a_truncated_shard_by_name(tmp_path):
    writer = FeatureStore(tmp_path).writer(CONFIG)
    path = writer.write(_units("ab"), _streams("ab"))
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ShardError, match=f"{path.name} has 1000 bytes"):
        EntryReader(writer.dir)


def test_writer_start_removes_dead_writers_temp_files_only(tmp_path):
    writer = FeatureStore(tmp_path).writer(CONFIG)
    dead = writer.dir / ".tmp-999999999-shard-1.h5"                 # old-style name: nobody holds it
    stale_index = writer.dir / ".tmp-index.json-abc"                 # a killed writer's index temp file
    for p in (dead, stale_index):
        p.write_bytes(b"x")
    alive = TempFile(writer.dir, "shard-3.h5")                       # a live writer holds its lock
    FeatureStore(tmp_path).writer(CONFIG)
    left = {p.name for p in writer.dir.iterdir() if p.name.startswith(".tmp-")}
    assert left == {alive.path.name}
    alive.discard()


def test_gc_adopts_what_it_can_and_removes_the_rest(tmp_path):
    writer = FeatureStore(tmp_path).writer(CONFIG)
    writer.write(_units("ab"), _streams("ab"))
    # Killed writers leave: a published-unindexed shard of new units (adoptable), one of units
    # already published (a duplicate), one unreadable, and a temp file.
    write_shard(writer.dir / "shard-0000000000000000001-00000001.h5", _units("cd"), _streams("cd"))
    write_shard(writer.dir / "shard-0000000000000000002-00000002.h5", _units("b"), _streams("b"))
    (writer.dir / "shard-0000000000000000003-00000003.h5").write_bytes(b"not hdf5")
    (writer.dir / ".tmp-999999999-shard-9.h5").write_bytes(b"half")
    WorkClaims(writer.dir).try_claim("chunk-dead")  # a killed run's claim file (lock dropped on gc)
    assert verify_entry(writer.dir).ok and len(verify_entry(writer.dir).warnings) == 5
    report = collect_garbage(writer.dir)
    assert report.adopted == ["shard-0000000000000000001-00000001.h5"]
    assert sorted(n for n, _ in report.orphans) == ["shard-0000000000000000002-00000002.h5",
                                                   "shard-0000000000000000003-00000003.h5"]
    assert report.temp_files == [".tmp-999999999-shard-9.h5"] and report.bytes_freed > 0
    assert report.claims == ["chunk-dead.lock"]
    after = verify_entry(writer.dir)
    assert after.ok and after.units == 4 and not after.warnings
    assert EntryReader(writer.dir).units["unit_id"].tolist() == ["a", "b", "c", "d"]


def test_claims_exclude_each_other_and_die_with_their_holder(tmp_path):
    claims = WorkClaims(tmp_path)
    held = claims.try_claim("chunk-1")
    assert held is not None and claims.try_claim("chunk-1") is None
    assert claims.try_claim("chunk-2") is not None
    held.release()
    assert not (tmp_path / "claims" / "chunk-1.lock").exists()
    again = claims.try_claim("chunk-1")
    assert again is not None
    again._handle.close()  # what a SIGKILL does: the kernel drops the lock, the file stays
    assert claims.try_claim("chunk-1") is not None


def test_claims_are_off_without_file_locking(tmp_path, monkeypatch):
    monkeypatch.setenv("MIGUE_USE_FILE_LOCKING", "FALSE")
    claims = WorkClaims(tmp_path)
    assert claims.try_claim("c") is not None and claims.try_claim("c") is not None


@pytest.mark.parametrize("change", [
    lambda i: i.pop("shards"),
    lambda i: i.update(shards={"file": "x"}),
    lambda i: i["shards"][0].update(units=7),
    lambda i: i["shards"][0].update(sha256="nope"),
    lambda i: i["shards"][0].update(unit_ids=[1]),
    lambda i: i["shards"][0].update(file="/etc/passwd"),
    lambda i: i["shards"].append(dict(i["shards"][0])),
    lambda i: i.update(failures=["a"]),
])
def test_malformed_index_is_a_clear_error(tmp_path, change):
    writer = FeatureStore(tmp_path).writer(CONFIG)
    writer.write(_units("a"), _streams("a"))
    index = json.loads((writer.dir / "index.json").read_text())
    change(index)
    (writer.dir / "index.json").write_text(json.dumps(index))
    with pytest.raises(IndexFormatError, match="index.json"):
        EntryReader(writer.dir)
    assert not FeatureStore(tmp_path).entries()  # `cache ls` skips it (and logs why)
    assert not verify_entry(writer.dir).ok
