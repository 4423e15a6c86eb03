"""Dask extraction checks its workers: the entry they would write and the inputs they see."""
from __future__ import annotations

import dataclasses
import shutil

import pytest

from migue.cache import EntryReader
from migue.pipeline.datasets import read_dataset
from migue.pipeline.orchestration.distributed import WorkerMismatchError, _WORKER_STATE, _extract_chunk, worker_config
from migue.pipeline.extraction.extract import ExtractOptions
from migue.pipeline.extraction.fingerprints import unit_fingerprints
from migue.cache.files import memo_for
from migue.cache import entry_key

OPTS = ExtractOptions(modality="pose", frames=16, batch_size=4, workers=0, shard_size=4)


def _payload(opts=OPTS):
    return {**dataclasses.asdict(opts), "checkpoints": list(opts.checkpoints)}


@pytest.fixture()
def client_view(sample_dir, tmp_path):
    """The client's data (a copy) and what it computed: entry key and one chunk's fingerprints."""
    data = tmp_path / "data"
    shutil.copytree(sample_dir, data)
    manifest = read_dataset(data)
    units = sorted(manifest.of_kind("mg"), key=lambda u: (u.video_id, u.start))[:4]
    cache = tmp_path / "cache"
    fps, _ = unit_fingerprints(units, manifest.videos, "pose", memo_for(cache))
    key = entry_key(worker_config(manifest, OPTS))
    _WORKER_STATE.clear()
    return data, cache, units, fps, key, manifest


def test_a_worker_seeing_other_input_bytes_fails_its_task_with_the_difference(client_view):
    """Old code: each worker re-read the dataset and extracted whatever it saw."""
    data, cache, units, fps, key, manifest = client_view
    sheet = manifest.videos[units[0].video_id].skeleton_path
    raw = bytearray(sheet.read_bytes())
    raw[-30] ^= 0x01  # the worker's copy of one skeleton differs by one bit
    sheet.write_bytes(bytes(raw))
    ids = [u.unit_id for u in units]
    with pytest.raises(WorkerMismatchError) as info:
        _extract_chunk(str(data), "auto", 64, str(cache), _payload(), ids, key, fps)
    text = str(info.value)
    assert ids[0] in text and fps[ids[0]].split(";")[0] in text and "worker" in text
    assert not list(cache.glob("*/shard-*.h5"))  # nothing was written


def test_a_worker_that_would_write_another_entry_fails_its_task(client_view):
    data, cache, units, fps, key, _ = client_view
    other = dataclasses.replace(OPTS, seed=7)  # the worker's weights differ: another entry
    ids = [u.unit_id for u in units]
    with pytest.raises(WorkerMismatchError, match=key[:12]):
        _extract_chunk(str(data), "auto", 64, str(cache), _payload(other), ids, key, fps)
    result = _extract_chunk(str(data), "auto", 64, str(cache), _payload(), ids, key, fps)
    assert result["key"] == key and result["extracted"] == len(ids)
    assert sorted(EntryReader(result["entry"]).units["unit_id"]) == sorted(ids)
