"""Ablations and extraction on Dask: a LocalCluster, and a scheduler + workers started as processes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from migue.cache import FeatureStore
from migue.fusion.synthetic import write_mg
from migue.pipeline.orchestration.ablate import Grid, run_ablation
from migue.pipeline.cli import main

pytestmark = pytest.mark.slow

GRID = {"task": "mg", "base": {"epochs": 3, "batch_size": 64},
        "axes": {"head": ["probe-linear-rgb", "probe-linear-pose-joint"], "seed": [0, 1]}}


# Run on a worker: which modules that decode video or build backbones it imported. The modality rows
# (metadata: stage two's stream table reads them through the migue.modalities entry points) may load;
# their decoders, inputs, extractors and one-pass engine may not. A lambda, so cloudpickle ships it by
# value and the worker never imports this test module (which imports them).
_imported_heavy_modules = lambda: sorted(  # noqa: E731
    m for m in ("av", "cv2", "mmaction", "mmpose", "migue.extractors.registry", "migue.extractors.mvit",
                "migue.extractors.agcn", "migue.extractors.swinface", "migue.pipeline.extraction.inputs",
                "migue.pipeline.extraction.decode_worker", "migue.pipeline.extraction.onepass") if m in sys.modules)


@pytest.fixture(scope="module")
def mg_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    write_mg(root, per_class=(4, 1, 1))
    return root


@pytest.fixture(scope="module")
def cluster(dask_cluster):
    """The session's LocalCluster (conftest.py): one per test run."""
    return dask_cluster


def test_grid_runs_every_combination_and_reports(mg_cache, tmp_path, cluster):
    from dask.distributed import Client

    out = tmp_path / "abl"
    table = run_ablation(Grid(**GRID), mg_cache, out, scheduler=cluster.scheduler_address)
    assert len(table) == 4 and (table["status"] == "ok").all()
    csv = pd.read_csv(out / "results.csv")
    assert set(csv["head"]) == set(GRID["axes"]["head"]) and set(csv["seed"]) == {0, 1}
    md = (out / "results.md").read_text()
    assert md.count("±") >= 6 and "**" in md  # mean ± std per metric, best marked
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Client(cluster.scheduler_address) as client:  # the workers never decoded or built a backbone
        assert all(mods == [] for mods in client.run(_imported_heavy_modules).values())


def test_rerun_skips_finished_runs(mg_cache, tmp_path, cluster):
    out = tmp_path / "abl"
    run_ablation(Grid(**GRID), mg_cache, out, scheduler=cluster.scheduler_address)
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/metrics.json")}
    table = run_ablation(Grid(**GRID), mg_cache, out, scheduler=cluster.scheduler_address)
    assert len(stamps) == 4 and (table["status"] == "ok").all()
    assert stamps == {p: p.stat().st_mtime_ns for p in out.glob("runs/*/metrics.json")}


def test_one_pass_grid_trains_its_probes_together(mg_cache, tmp_path, cluster):
    grid = dict(GRID, one_pass=True, axes={"head": ["probe-linear-rgb", "probe-mlp-pose-joint", "late-pose"],
                                           "lr": [5e-4, 2e-3], "seed": [0]})
    table = run_ablation(Grid(**grid), mg_cache, tmp_path / "abl", scheduler=cluster.scheduler_address)
    assert len(table) == 6 and (table["status"] == "ok").all(), table[["run", "error"]]
    swept = {}
    for row in table.itertuples():
        record = json.loads((tmp_path / "abl" / "runs" / row.run / "config.json").read_text())
        swept[row.run] = record.get("sweep", {}).get("probes_in_pass")
        assert record["config"]["lr"] == row.lr and record["config"]["head"] == row.head
    assert sorted(swept.values(), key=str) == [4, 4, 4, 4, None, None]  # 4 probes in one pass, late-pose alone


def test_a_failing_run_is_reported_and_the_others_finish(mg_cache, tmp_path, cluster):
    grid = dict(GRID, axes={"head": ["probe-linear-rgb", "no-such-head"], "seed": [0]})
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(grid))
    result = CliRunner().invoke(main, ["ablate", str(tmp_path / "g.yaml"), "--cache", str(mg_cache),
                                       "--out", str(tmp_path / "abl"), "--scheduler", cluster.scheduler_address])
    assert result.exit_code == 1
    csv = pd.read_csv(tmp_path / "abl" / "results.csv").set_index("head")
    assert csv.loc["probe-linear-rgb", "status"] == "ok"
    assert csv.loc["no-such-head", "status"] == "failed" and "no-such-head" in csv.loc["no-such-head", "error"]
    assert "no-such-head" in (tmp_path / "abl" / "results.md").read_text()


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_example_grids_expand_to_valid_runs(path):
    from migue.fusion import get_head, resolve_config

    grid = Grid.load(path)
    runs = grid.runs()
    assert len(runs) > 1
    for run in runs:
        cfg = resolve_config(grid.task, run)
        get_head(cfg["head"], grid.task)


def test_bad_grid_files_are_named(tmp_path):
    (tmp_path / "g.yaml").write_text("task: mg\naxes:\n  head: cmtf\n")
    with pytest.raises(ValueError, match="axis 'head' must be a non-empty list"):
        Grid.load(tmp_path / "g.yaml")


@pytest.fixture(scope="module")
def separate_cluster(tmp_path_factory):
    """`dask scheduler` and two `dask worker` processes on loopback, as on a real cluster."""
    folder = tmp_path_factory.mktemp("dask")
    sched_file = folder / "scheduler.json"
    dask = str(Path(sys.executable).parent / "dask")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(sched_file)], cwd=folder, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    deadline = time.time() + 60
    while not sched_file.exists() and time.time() < deadline:
        time.sleep(0.2)
    for _ in range(2):
        procs.append(subprocess.Popen([dask, "worker", "--scheduler-file", str(sched_file), "--nthreads", "1",
                                       "--no-dashboard"], cwd=folder, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    from dask.distributed import Client
    address = json.loads(sched_file.read_text())["address"]
    with Client(address) as client:
        client.wait_for_workers(2, timeout=90)
    yield address
    for p in procs[::-1]:
        p.terminate()
    for p in procs:
        p.wait(timeout=30)


def test_ablate_against_a_separately_started_scheduler(mg_cache, tmp_path, separate_cluster):
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(GRID))
    result = CliRunner().invoke(main, ["ablate", str(tmp_path / "g.yaml"), "--cache", str(mg_cache),
                                       "--out", str(tmp_path / "abl"), "--scheduler", separate_cluster],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (pd.read_csv(tmp_path / "abl" / "results.csv")["status"] == "ok").all()
    from dask.distributed import Client
    with Client(separate_cluster) as client:
        ran_on = client.run(_imported_heavy_modules)
    assert len(ran_on) == 2 and all(mods == [] for mods in ran_on.values())


def test_extract_on_dask_gives_the_single_process_cache(sample_dir, tmp_path, cluster):
    import torch
    from dask.distributed import Client

    from migue.cache.verify import digest_entry
    from migue.pipeline.datasets import read_dataset
    from migue.pipeline.extraction.dask_run import backbone_builds, extract_dask
    from migue.pipeline.extraction.extract import ExtractOptions, extract
    from migue.pipeline.extraction.plan import plan_extraction, request

    manifest = read_dataset(sample_dir)
    opts = ExtractOptions(modality="pose", frames=16, workers=0, shard_size=32)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # Dask workers run one thread each; float sums then agree to the bit
    try:
        local = extract(manifest, FeatureStore(tmp_path / "local"), opts)
    finally:
        torch.set_num_threads(threads)
    store = FeatureStore(tmp_path / "dask")
    remote = extract_dask(plan_extraction(manifest, store, [request(opts)]), store, cluster.scheduler_address, 2)
    assert remote.reports["pose"].extracted == local.extracted == len(manifest.of_kind("mg"))
    assert not remote.reports["pose"].failures
    assert digest_entry(remote.reports["pose"].entry).entry == digest_entry(local.entry).entry
    with Client(cluster.scheduler_address) as client:
        builds = client.run(backbone_builds)
    assert sum(builds.values()) >= 1 and max(builds.values()) == 1  # once per worker, not per task
    again = extract_dask(plan_extraction(manifest, store, [request(opts)]), store, cluster.scheduler_address, 2)
    assert again.reports["pose"].extracted == 0  # idempotent: published chunks are skipped
    with Client(cluster.scheduler_address) as client:
        client.restart()  # fresh worker processes (no backbone, no video modules) for the session's next user
