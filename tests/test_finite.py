"""Finite or failed: NaN, inf and float16 overflow never reach a shard, verify or a head."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from migue.cache import EntryReader, EntryWriter, verify_entry
from migue.cache.index import read_index, write_index
from migue.common.files import file_sha256
from migue.cache.shard import write_shard

CONFIG = {"modality": "pose", "streams": {"pooled": {"tokens": 2, "dim": 4}}}


def _units(*ids):
    return {"unit_id": list(ids), "kind": ["mg"] * len(ids), "split": ["train"] * len(ids),
            "mg_label": [1] * len(ids), "video_id": ["v"] * len(ids)}


@pytest.mark.parametrize(("value", "reason"), [(np.nan, "NaN"), (np.inf, "inf"), (1e5, "float16")])
def test_the_writer_refuses_tokens_that_are_not_finite_in_float16(tmp_path, value, reason):
    from migue.cache import NonFiniteTokensError

    writer = EntryWriter(tmp_path / "e", CONFIG)
    bad = np.ones((2, 4), dtype=np.float32)
    bad[1, 2] = value
    with pytest.raises(NonFiniteTokensError, match=reason) as info:
        writer.write(_units("good", "bad"), {"pooled": [np.ones((2, 4), np.float32), bad]})
    assert "bad" in str(info.value) and "pooled" in str(info.value)
    assert writer.done_units() == set()  # nothing published
    assert not list(writer.dir.glob("shard-*")) and not list(writer.dir.glob(".tmp-*"))


def test_extraction_fails_the_units_whose_tokens_are_not_finite(manifest, tmp_path, monkeypatch):
    """The first unit's tokens overflow float16 in the cast: it fails with that reason, the rest publish."""
    import migue.pipeline.extraction.onepass as extract_module  # the one executor forwards every batch
    from migue.cache import FeatureStore
    from migue.pipeline.extraction.extract import ExtractOptions, extract

    keep = set(sorted(manifest.videos)[:1])
    small = dataclasses.replace(manifest, units=[u for u in manifest.units if u.video_id in keep])
    victim = sorted(small.of_kind("mg"), key=lambda u: (u.video_id, u.start, u.unit_id))[0].unit_id
    real, calls = extract_module.forward, []

    def forward(*args):
        out = {k: np.asarray(v, dtype=np.float32).copy() for k, v in real(*args).items()}
        if not calls:
            out[next(iter(out))][0] += 1e9  # the first unit of the first batch: far past 65504
        calls.append(1)
        return out

    monkeypatch.setattr(extract_module, "forward", forward)
    opts = ExtractOptions(modality="pose", frames=16, batch_size=4, workers=0, shard_size=4)
    report = extract(small, FeatureStore(tmp_path / "cache"), opts)
    assert victim in report.failures and "float16" in report.failures[victim], report.failures
    reader = EntryReader(report.entry)
    published = set(reader.units["unit_id"])
    assert victim not in published
    assert len(published) == len(small.of_kind("mg")) - 1
    for stream in reader.streams:
        assert np.isfinite(reader.read(stream).astype(np.float32)).all()
    assert victim in EntryWriter(report.entry, reader.config).failures()  # recorded in the index


def _bypass(writer: EntryWriter, units: dict, tokens: list[np.ndarray]) -> None:
    """Publish a shard the way a foreign or old writer could: no checks."""
    path = writer.dir / "shard-0000000000000000001-deadbeef.h5"
    write_shard(path, units, {"pooled": tokens})
    index = read_index(writer.dir)
    index["shards"].append({"file": path.name, "unit_ids": list(units["unit_id"]), "units": len(units["unit_id"]),
                            "sha256": file_sha256(str(path)), "bytes": path.stat().st_size})
    write_index(writer.dir, index)


def test_verify_finds_nan_tokens_and_wrong_token_counts(tmp_path):
    writer = EntryWriter(tmp_path / "e", CONFIG)
    writer.write(_units("ok"), {"pooled": [np.ones((2, 4), np.float32)]})
    nan = np.ones((2, 4), np.float32)
    nan[0, 0] = np.nan
    _bypass(writer, _units("nan", "short"), [nan, np.ones((1, 4), np.float32)])
    report = verify_entry(writer.dir)
    text = "\n".join(report.problems)
    assert "nan" in text and "NaN" in text, text
    assert "short" in text and "1 tokens" in text and "2" in text, text
    assert report.units == 1  # the good shard still counts


def test_fusion_refuses_non_finite_inputs_naming_entry_and_unit(tmp_path):
    from migue.fusion.data import Input, NonFiniteInputError, load_views

    writer = EntryWriter(tmp_path / "pose-e", CONFIG)
    writer.write(_units("ok"), {"pooled": [np.ones((2, 4), np.float32)]})
    inf = np.ones((2, 4), np.float32)
    inf[1, 3] = np.inf
    _bypass(writer, _units("bad-unit"), [inf])
    reader = EntryReader(writer.dir)
    with pytest.raises(NonFiniteInputError) as info:
        load_views(reader, {"pose": Input(entry="pose", stream="pooled", pool="none")}, np.arange(len(reader)))
    assert "bad-unit" in str(info.value) and "pose-e" in str(info.value)
