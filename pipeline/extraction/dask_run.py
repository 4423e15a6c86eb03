"""A `Plan` executed on Dask: each task is a shard of videos running the one-pass executor for
every entry of the plan, so a cluster decodes each video once too.

Tasks are idempotent (published units are skipped, chunks are claimed in the cache), each worker
builds its backbones once and keeps them for its later tasks, and tasks ask for `{'GPU': 1}` when
the workers declare GPUs (`dask worker --resources GPU=1`). Decoding runs in the task's own
process (Dask worker processes cannot start decoding processes). Before writing anything a task
checks that its worker derives the client's entry keys and sees the client's input fingerprints.
A plugin row (`register_modality` in a `--plugin` module or file) travels with the task: the task
names the plugins the plan's rows came from and imports them on the worker before it unpickles its
shard (which may hold the plugin's functions) and runs it.
Shards hold whole chunks (a chunk never spans videos) and forward the same batches as a local
run: the entries are bit-identical to a local run's (`migue cache digest`).
"""
from __future__ import annotations

import dataclasses
import logging
import pickle
import time
from pathlib import Path
from typing import Any

from migue.cache import FeatureStore, entry_key
from migue.cache.files import memo_for
from migue.common.dask_client import connect, gpu_resources
from migue.common.devices import pick_device
from migue.common.plugins import import_plugins
from migue.pipeline.datasets.manifest import Manifest

from .backbone import build_model, entry_config, resolve_precision
from .fingerprints import unit_fingerprints
from .onepass import ExtractRun, execute_plan
from .options import ExtractOptions
from .plan import EntryPlan, Plan
from .summary import ExtractSummary, Progress
from .work import unproduced

log = logging.getLogger("migue.distributed")

_WORKER_STATE: dict[str, Any] = {"models": {}, "builds": 0}  # per worker process: built backbones
SHARDS_PER_WORKER = 4  # shards of videos per Dask worker: work spreads evenly, few repeated start-ups


class WorkerMismatchError(RuntimeError):
    """A worker sees other inputs, or would write another entry, than the client computed."""


def worker_config(manifest: Any, options: ExtractOptions) -> dict[str, Any]:
    """The entry config a run with these options derives (what its key hashes; no model needed)."""
    return entry_config(options, resolve_precision(options.precision, pick_device(options.device)), manifest)


def backbone_builds() -> int:
    """How many backbones this worker built (for tests: once per worker and options)."""
    return int(_WORKER_STATE["builds"])


def _model_for(entry: EntryPlan) -> Any:
    opts = entry.request.options
    key = repr((entry.request.modality.name, sorted(dataclasses.asdict(opts).items())))
    if key not in _WORKER_STATE["models"]:
        _WORKER_STATE["models"][key] = build_model(opts)
        _WORKER_STATE["builds"] += 1
    return _WORKER_STATE["models"][key]


def check_worker(shard: Plan, manifest: Manifest, cache_root: Path) -> None:
    """Refuse (WorkerMismatchError) a shard whose entries this worker would key otherwise, or
    whose units' inputs it sees with other bytes than the client fingerprinted."""
    for e in shard.entries:
        mine = entry_key(worker_config(manifest, e.request.options))
        if mine != e.key:
            raise WorkerMismatchError(f"worker would write entry {mine[:12]}, the client computed {e.key[:12]} "
                                      "(another package version, weights or options on this worker)")
        seen, _ = unit_fingerprints(e.pending, manifest.videos, e.request.modality, memo_for(cache_root))
        differ = [f"{u.unit_id}: client {u.fingerprint or 'none'}, worker {seen.get(u.unit_id, 'none')}"
                  for u in e.pending if seen.get(u.unit_id) != u.fingerprint]
        if differ:
            raise WorkerMismatchError(f"worker sees other inputs than the client for {len(differ)} of "
                                      f"{len(e.pending)} units of {e.name}: " + "; ".join(differ[:3]))


def plan_plugins(plan: Plan) -> tuple[str, ...]:
    """The plugins (module names or .py files, as `register_modality` recorded them) that registered
    the plan's modality rows: what a worker must import before it can run a shard of the plan."""
    return tuple(dict.fromkeys(e.request.modality.source for e in plan.entries
                               if e.request.modality.source != "built-in"))


def shard_task(payload: bytes, plugins: tuple[str, ...], manifest: Manifest, cache_root: str) -> dict[str, Any]:
    """One Dask task: import the plan's plugins on this worker (a fresh process knows only the built-in
    rows), then unpickle its shard (`payload`, a `Plan` without its manifest, which may hold the
    plugins' functions) and run it."""
    try:
        import_plugins(plugins)
    except ImportError as exc:
        raise WorkerMismatchError(f"worker cannot import a plugin of the plan's modalities: {exc} (a plugin "
                                  "file must be at the same path on every worker, a module importable there)") from None
    return run_shard(pickle.loads(payload), manifest, cache_root)


def run_shard(shard: Plan, manifest: Manifest, cache_root: str) -> dict[str, Any]:
    """Check the worker, then execute this shard of videos with its kept backbones."""
    shard = dataclasses.replace(shard, manifest=manifest)
    store = FeatureStore(cache_root)
    check_worker(shard, manifest, store.root)
    built = {e.name: _model_for(e) for e in shard.entries if e.pending}
    run = execute_plan(shard, store, built, workers=0)
    return {"keys": {e.name: entry_key(dict(e.config)) for e in shard.entries},
            "reports": {n: {"extracted": r.extracted, "failures": r.failures} for n, r in run.reports.items()},
            "summary": run.summary}


def extract_dask(plan: Plan, store: FeatureStore, scheduler: str | None, workers: int) -> ExtractRun:
    """Execute `plan` on a Dask cluster (at `scheduler`, or a LocalCluster of `workers` processes
    with 'local' or None): one task per shard of videos; same cache as a local run."""
    import cloudpickle  # as Dask pickles a task's arguments (a plugin row's lambdas too)
    from dask.distributed import as_completed
    from tqdm import tqdm

    t0 = time.perf_counter()
    reports = {e.name: e.report() for e in plan.entries}
    summary = ExtractSummary(units={e.name: 0 for e in plan.entries})
    if plan.pending:
        with connect(scheduler, workers) as client:
            resources = gpu_resources(client) or None
            count = max(1, len(client.scheduler_info().get("workers", {})) or workers)
            shards = plan.split(count * SHARDS_PER_WORKER)
            log.info("%d units of %s in %d shards of videos on Dask", plan.pending,
                     ", ".join(e.name for e in plan.entries), len(shards))
            manifest = client.scatter(plan.manifest, broadcast=True)
            plugins = plan_plugins(plan)
            payloads = [cloudpickle.dumps(dataclasses.replace(s, manifest=None)) for s in shards]
            futures = [client.submit(shard_task, payload, plugins, manifest, str(store.root),
                                     key=f"extract-{s.videos[0].video_id}-{i}", resources=resources, pure=False)
                       for i, (s, payload) in enumerate(zip(shards, payloads))]
            progress = Progress(plan.pending)  # off a terminal: a line per finished shard, rate and ETA
            for future in tqdm(as_completed(futures), total=len(futures), desc="extract shards", unit="shard",
                               disable=None):
                result = future.result()
                _fold(result, plan, reports, summary)
                units = sum(r["extracted"] for r in result["reports"].values())
                progress.forwarded(units)
                progress.published("the plan (a Dask task)", units)
    for e in plan.entries:  # every asked unit is saved or failed, on the client's view of the entry
        done = store.writer(dict(e.config)).done_units()
        report = reports[e.name]
        report.failures.update(unproduced({u.unit_id for u in e.pending}, done, report.failures, "Dask run"))
    summary.seconds = time.perf_counter() - t0
    return ExtractRun(reports, summary)


def _fold(result: dict[str, Any], plan: Plan, reports: dict, summary: ExtractSummary) -> None:
    """Add one finished shard to the run's reports and summary (never another entry's work)."""
    for e in plan.entries:
        if result["keys"].get(e.name, e.key) != e.key:
            raise WorkerMismatchError(f"a task wrote entry {result['keys'][e.name][:12]}, the client computed "
                                      f"{e.key[:12]} ({e.entry})")
    for name, r in result["reports"].items():
        reports[name].extracted += r["extracted"]
        reports[name].failures.update(r["failures"])
    summary.add(result["summary"])
