"""`migue extract --modality all`: one plan, one pass per video (pose and face share the skeleton
parse), locally and on Dask; the same bytes both ways; the summary says frames decoded of needed."""
from __future__ import annotations

import re

import pytest
import torch
from click.testing import CliRunner

from migue.cache import FeatureStore, digest_entry
from migue.pipeline.cli import main

pytestmark = pytest.mark.slow

ARGS = ["--modality", "all", "--arch", "tiny", "--frames", "2", "--size", "112", "--workers", "0"]
LINE = re.compile(r"decoded (\d+) of (\d+) frames needed \(([\d.]+)x\), (\d+) videos, units: (.*), [\d.]+ s")


def _extract(sample_dir, cache, *extra):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the Dask workers run one thread each: float sums then agree to the bit
    try:
        result = CliRunner().invoke(main, ["extract", "--data", str(sample_dir), "--cache", str(cache), *ARGS, *extra],
                                    catch_exceptions=False)
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    return result.output


def _digests(cache):
    store = FeatureStore(cache)
    return {e.config["modality"]: digest_entry(store.root / e.name).entry for e in store.find()}


def test_local_and_dask_extract_decode_each_video_once_and_agree(sample_dir, manifest, tmp_path, dask_cluster):
    from dask.distributed import Client

    mg, windows = len(manifest.of_kind("mg")), len(manifest.of_kind("window"))
    videos = sum(1 for v in manifest.videos.values() if v.video_path)
    try:
        outputs = {"local": _extract(sample_dir, tmp_path / "local"),
                   "dask": _extract(sample_dir, tmp_path / "dask", "--scheduler", dask_cluster.scheduler_address)}
    finally:
        with Client(dask_cluster.scheduler_address) as client:
            client.restart()  # fresh workers (no backbone, no video modules) for the session's next Dask test
    for where, output in outputs.items():
        found = LINE.search(output)
        assert found, f"{where}: no summary line in\n{output}"
        decoded, needed, _, decoded_videos, units = found.groups()
        assert 0 < int(decoded) <= 1.05 * int(needed), (where, found.group(0))
        assert int(decoded_videos) == videos, (where, found.group(0))  # each video decoded once for all
        assert units == f"context {windows}, face {windows}, pose {mg}, rgb {mg}", (where, found.group(0))
    local, dask = _digests(tmp_path / "local"), _digests(tmp_path / "dask")
    assert sorted(local) == ["context", "face", "pose", "rgb"]
    assert dask == local
