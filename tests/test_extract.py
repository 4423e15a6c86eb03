"""Extraction into the cache: every modality, resume, one bad clip loses nothing else."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from migue.cache import EntryReader, FeatureStore
from migue.pipeline.datasets import read_dataset
from migue.pipeline.extraction.batching import batch_for_memory, resolve_batch_size
from migue.pipeline.extraction.extract import ExtractOptions, extract, open_entry

FAST = {
    "rgb": dict(arch="tiny", frames=8, size=64),
    "context": dict(arch="tiny", frames=8, size=64),
    "pose": dict(frames=16),
    "face": dict(frames=2),
}


def _opts(modality, **kw):
    return ExtractOptions(modality=modality, batch_size=8, workers=0, shard_size=32, **{**FAST[modality], **kw})


@pytest.mark.parametrize("modality", sorted(FAST))
def test_extract_fills_an_entry_that_describes_itself(manifest, tmp_path, modality):
    store = FeatureStore(tmp_path)
    report = extract(manifest, store, _opts(modality))
    kind = "window" if modality in ("context", "face") else "mg"
    expected = {u.unit_id: u for u in manifest.of_kind(kind)}
    assert report.extracted == len(expected) and not report.failures and report.random_weights
    reader = EntryReader(report.entry)
    assert set(reader.units["unit_id"]) == set(expected)
    row = reader.units.iloc[0]
    unit = expected[row["unit_id"]]
    assert (row["video_id"], row["split"], row["mg_label"], row["emotion"]) == (
        unit.video_id, unit.split, unit.mg_label, unit.emotion)
    for stream, spec in reader.streams.items():
        tokens = reader.read(stream, [0, 1])
        assert tokens.shape == (2, spec["tokens"], spec["dim"]) and tokens.dtype == np.float16
        assert np.isfinite(tokens).all() and tokens.std() > 0
    assert reader.config["modality"] == modality and reader.config["weights"] == {"random_init_seed": 0}


def test_rerun_skips_published_units_and_gives_identical_tokens(manifest, tmp_path):
    store = FeatureStore(tmp_path)
    first = extract(manifest, store, _opts("pose"))
    again = extract(manifest, store, _opts("pose"))
    assert again.entry == first.entry and again.extracted == 0 and again.done_before == first.extracted
    other = extract(manifest, FeatureStore(tmp_path / "other"), _opts("pose"))
    a, b = EntryReader(first.entry), EntryReader(other.entry)
    row_in_b = {uid: i for i, uid in enumerate(b.units["unit_id"])}
    np.testing.assert_array_equal(a.read("joint"), b.read("joint", [row_in_b[u] for u in a.units["unit_id"]]))


def test_changing_what_shapes_the_numbers_selects_another_entry(manifest, tmp_path):
    store = FeatureStore(tmp_path)
    base = extract(manifest, store, _opts("pose")).entry
    assert extract(manifest, store, _opts("pose", frames=20)).entry != base
    assert extract(manifest, store, _opts("pose", layout="coco")).entry != base
    # bf16 on a CPU without bf16 units costs minutes: the entry it would fill, without the forward
    assert open_entry(manifest, store, _opts("pose", precision="bf16"), "bf16").dir != base
    assert len(store.entries()) == 4


def test_a_broken_video_fails_its_units_only(sample_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(sample_dir, data)
    victim = next(data.glob("imigue_rgb_phase1/train_data/*/*.mp4"))
    manifest = read_dataset(data)
    victim.write_bytes(victim.read_bytes()[:2000])  # truncated after reading the manifest
    report = extract(manifest, FeatureStore(tmp_path / "cache"), _opts("rgb"))
    bad = {u.unit_id for u in manifest.of_kind("mg") if u.video_id == victim.stem}
    assert set(report.failures) == bad and all(victim.name in r for r in report.failures.values())
    assert report.extracted == len(manifest.of_kind("mg")) - len(bad)
    assert set(FeatureStore(tmp_path / "cache").writer(EntryReader(report.entry).config).failures()) == bad


@pytest.mark.parametrize(("free", "per_unit", "expected"), [
    (80e9, 1e9, 32),      # 0.6 * 80 / 1 = 48 fit -> 32, a power of two
    (80e9, 0.1e9, 256),   # 480 fit -> the cap
    (1e9, 2e9, 1),        # not even one fits -> 1 (the forward will say if it does not)
    (10e9, 0.3e9, 16),    # 20 fit -> 16
])
def test_auto_cuda_batch_fills_the_free_memory_share(free, per_unit, expected):
    assert batch_for_memory(int(free), int(per_unit)) == expected


def test_auto_batch_on_cpu_follows_the_measured_defaults():
    import torch

    cpu = torch.device("cpu")
    for modality, expected in {"rgb": 1, "context": 1, "pose": 4, "face": 4}.items():
        assert resolve_batch_size(ExtractOptions(modality=modality), torch.nn.Identity(), cpu, "fp32", None) == expected
    assert resolve_batch_size(ExtractOptions(modality="rgb", batch_size=6), torch.nn.Identity(), cpu, "fp32", None) == 6
