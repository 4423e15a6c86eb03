"""Dask extraction checks its workers: the entry they would write and the inputs they see."""
from __future__ import annotations

import dataclasses
import pickle
import re
import shutil

import pytest

from migue.cache import EntryReader, FeatureStore
from migue.pipeline.datasets import read_dataset
from migue.pipeline.extraction.dask_run import WorkerMismatchError, run_shard, shard_task
from migue.pipeline.extraction.extract import ExtractOptions
from migue.pipeline.extraction.plan import plan_extraction, request

OPTS = ExtractOptions(modality="pose", frames=16, batch_size=4, workers=0, shard_size=4)


@pytest.fixture()
def client_view(sample_dir, tmp_path):
    """The client's data (a copy) and its plan for one video's clips, shipped without the manifest."""
    data = tmp_path / "data"
    shutil.copytree(sample_dir, data)
    manifest = read_dataset(data)
    first = sorted(manifest.videos)[0]
    ids = {u.unit_id for u in manifest.of_kind("mg") if u.video_id == first}
    cache = tmp_path / "cache"
    plan = plan_extraction(manifest, FeatureStore(cache), [request(OPTS)], ids)
    return data, cache, dataclasses.replace(plan, manifest=None), manifest


def test_a_worker_seeing_other_input_bytes_fails_its_task_with_the_difference(client_view):
    """Old code: each worker re-read the dataset and extracted whatever it saw."""
    data, cache, shard, manifest = client_view
    unit = shard.entries[0].pending[0]
    sheet = manifest.videos[unit.video_id].skeleton_path
    raw = bytearray(sheet.read_bytes())
    raw[-30] ^= 0x01  # the worker's copy of one skeleton differs by one bit
    sheet.write_bytes(bytes(raw))
    with pytest.raises(WorkerMismatchError) as info:
        run_shard(shard, manifest, str(cache))
    text = str(info.value)
    assert unit.unit_id in text and unit.fingerprint.split(";")[0] in text and "worker" in text
    assert not list(cache.glob("*/shard-*.h5"))  # nothing was written


def test_a_worker_that_would_write_another_entry_fails_its_task(client_view):
    data, cache, shard, manifest = client_view
    entry = shard.entries[0]
    other = dataclasses.replace(shard, entries=(dataclasses.replace(entry, key="0" * 64),))  # the client's key differs
    with pytest.raises(WorkerMismatchError, match=entry.key[:12]):
        run_shard(other, manifest, str(cache))
    assert not list(cache.glob("*/shard-*.h5"))
    result = run_shard(shard, manifest, str(cache))
    assert result["keys"]["pose"] == entry.key and result["reports"]["pose"]["extracted"] == len(entry.pending)
    assert sorted(EntryReader(entry.entry).units["unit_id"]) == sorted(u.unit_id for u in entry.pending)


def test_a_worker_that_cannot_import_the_plans_plugin_fails_its_task_naming_it(client_view, tmp_path):
    """A plugin row's task imports its plugin on the worker first (tests/test_backbone_plugin.py runs
    one on Dask); a plugin file missing there is named, and nothing is written."""
    data, cache, shard, manifest = client_view
    missing = tmp_path / "elsewhere" / "my_backbone.py"
    with pytest.raises(WorkerMismatchError, match=rf"--plugin {re.escape(str(missing))}: cannot import it"):
        shard_task(pickle.dumps(shard), (str(missing),), manifest, str(cache))
    assert not list(cache.glob("*/shard-*.h5"))
