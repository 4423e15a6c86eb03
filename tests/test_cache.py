"""The HDF5 feature store: keys, atomic shards, resume, index safety, readers."""
from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

from migue.cache import DuplicateUnitsError, EntryReader, FeatureStore, ShardError, entry_key
from migue.cache.shard import write_shard

CONFIG = {"modality": "rgb", "backbone": "mvit", "arch": "tiny",
          "streams": {"tokens": {"tokens": 4, "dim": 8}, "cls": {"tokens": 1, "dim": 8}}}


def _units(ids):
    return {"unit_id": list(ids), "split": ["train"] * len(ids), "mg_label": list(range(len(ids)))}


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
