"""Every unit a run is asked for ends extracted or failed with a reason (issue 23, case 1):
none vanishes from an entry while the run says "0 failed"."""
from __future__ import annotations

import dataclasses

import pytest

from migue.cache import FeatureStore
from migue.cache.index import read_index
from migue.pipeline.extraction.decode_pool import DecodePool
from migue.pipeline.extraction.extract import ExtractOptions, extract
from migue.pipeline.extraction.onepass import extract_videos

FAST = {"context": dict(arch="tiny", frames=4, size=32), "pose": dict(frames=16)}
KIND = {"context": "window", "pose": "mg"}


def _opts(modality: str) -> ExtractOptions:
    return ExtractOptions(modality=modality, batch_size=3, workers=0, shard_size=4, **FAST[modality])


def _video(manifest) -> str:
    return sorted(v for v, video in manifest.videos.items() if video.video_path)[0]


def _units(manifest, kind: str, video: str) -> list:
    return [u for u in manifest.of_kind(kind) if u.video_id == video][:6]


def _accounted(report) -> tuple[set[str], dict[str, str]]:
    """What the entry holds (published units) and the failures it records."""
    index = read_index(report.entry)
    return {u for shard in index["shards"] for u in shard["unit_ids"]}, index["failures"]


def test_a_unit_whose_input_never_arrives_fails_naming_it(manifest, tmp_path, monkeypatch):
    """A unit the one-pass engine never gets an input for is failed with a reason naming it, and the
    rest of its chunk is still published (before: the whole chunk vanished, "0 failed")."""
    only = {u.unit_id for u in _units(manifest, "window", _video(manifest))}
    lost = sorted(only)[1]
    decode = DecodePool.decode

    def losing_one(self, jobs):
        yield from (item for item in decode(self, jobs) if item.key[1] != lost)

    monkeypatch.setattr(DecodePool, "decode", losing_one)
    report = extract_videos(manifest, FeatureStore(tmp_path), [_opts("context")], only=only)["context"]
    published, failures = _accounted(report)
    assert published == only - {lost} and report.extracted == len(only) - 1
    assert set(report.failures) == set(failures) == {lost}
    assert lost in report.failures[lost] and "never" in report.failures[lost]


@pytest.mark.parametrize("modality", sorted(FAST))
def test_a_unit_id_in_two_manifest_rows_fails_with_a_reason(manifest, tmp_path, modality):
    """Two rows of one unit id (one video in two splits) fail that unit with a reason naming both
    splits; every other unit is extracted once (before: the windows of the video vanished)."""
    units = _units(manifest, KIND[modality], _video(manifest))
    twice = dataclasses.replace(units[0], split="test")
    doubled = dataclasses.replace(manifest, units=[*manifest.units, twice])
    only = {u.unit_id for u in units}
    store = FeatureStore(tmp_path)
    run = extract if modality == "pose" else lambda *a, **k: extract_videos(*a[:2], [a[2]], **k)[modality]
    report = run(doubled, store, _opts(modality), only=only)
    published, failures = _accounted(report)
    assert published == only - {twice.unit_id} and report.extracted == len(only) - 1
    assert set(report.failures) == set(failures) == {twice.unit_id}
    reason = report.failures[twice.unit_id]
    assert "twice" in reason and "test" in reason and units[0].split in reason


def test_a_pose_unit_whose_input_never_arrives_fails_naming_it(manifest, tmp_path, monkeypatch):
    """The same account for a row computed without decoding (pose, in the one pass since the pose
    loop is gone): a unit whose input never reached a batch is failed, not dropped."""
    from migue.pipeline.extraction import onepass

    only = {u.unit_id for u in _units(manifest, "mg", _video(manifest))}
    lost = sorted(only)[1]
    take = onepass._Pass.take

    def losing_one(self, item):
        if item.key[1] != lost:
            take(self, item)

    monkeypatch.setattr(onepass._Pass, "take", losing_one)
    report = extract(manifest, FeatureStore(tmp_path), _opts("pose"), only=only)
    published, failures = _accounted(report)
    assert published == only - {lost} and report.extracted == len(only) - 1
    assert set(report.failures) == set(failures) == {lost}
    assert lost in report.failures[lost] and "never" in report.failures[lost]
