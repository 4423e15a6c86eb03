"""Extraction across Dask workers: each chunk of units (one shard) is a task.

Tasks are idempotent (published units are skipped, chunks are claimed in the cache), each worker
builds its backbone once and keeps it for every later task, and tasks ask for `{'GPU': 1}` when
the workers declare GPUs (`dask worker --resources GPU=1`). Decoding runs in the task's own
process (Dask workers cannot fork DataLoader workers).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from migue.cache import EntryReader, FeatureStore, entry_key
from migue.cache.files import memo_for
from migue.cache.index import read_index
from migue.common.devices import pick_device
from migue.pipeline.datasets.files import as_roots
from migue.pipeline.extraction.backbone import build_model, entry_config, resolve_precision
from migue.pipeline.extraction.extract import ExtractOptions, ExtractReport, extract, open_entry
from migue.pipeline.extraction.work import chunks_of
from migue.pipeline.extraction.fingerprints import unit_fingerprints
from migue.pipeline.extraction.modalities import get_modality

from .ablate import connect, gpu_resources

log = logging.getLogger("migue.distributed")

_WORKER_STATE: dict[str, Any] = {}  # per worker process: the manifest and the built backbone


class WorkerMismatchError(RuntimeError):
    """A worker sees other inputs, or would write another entry, than the client computed."""


def _extract_chunk(data_root: str | list[str], layout: str, window: int, cache_root: str, opts: dict[str, Any],
                   unit_ids: list[str], expected_key: str | None = None,
                   expected: dict[str, str] | None = None) -> dict[str, Any]:
    """One task: extract these units (a chunk) on this worker, reusing its manifest and backbone.
    Before anything is written it checks that this worker derives the client's entry key and
    sees the client's input fingerprints for its units; else the task fails with the difference."""
    from migue.pipeline.datasets import read_dataset

    options = ExtractOptions(**{**opts, "checkpoints": tuple(opts["checkpoints"]), "workers": 0})
    key = repr((data_root, layout, window, sorted(asdict(options).items())))
    if _WORKER_STATE.get("key") != key:
        _WORKER_STATE.update(key=key, manifest=read_dataset(data_root, layout=layout, window=window),
                             model=build_model(options))
        _WORKER_STATE["builds"] = _WORKER_STATE.get("builds", 0) + 1
    manifest, store = _WORKER_STATE["manifest"], FeatureStore(cache_root)
    mine = entry_key(worker_config(manifest, options))
    if expected_key is not None and mine != expected_key:
        raise WorkerMismatchError(f"worker would write entry {mine[:12]}, the client computed {expected_key[:12]} "
                                  "(another package version, weights or options on this worker)")
    if expected is not None:
        differ = _fingerprint_difference(manifest, options.modality, unit_ids, expected, store.root)
        if differ:
            raise WorkerMismatchError(f"worker sees other inputs than the client for {len(differ)} of "
                                      f"{len(unit_ids)} units under {data_root}: " + "; ".join(differ[:3]))
    report = extract(manifest, store, options, only=set(unit_ids), model=_WORKER_STATE["model"])
    return {"extracted": report.extracted, "failures": report.failures, "entry": str(report.entry),
            "key": read_index(report.entry)["key"]}


def worker_config(manifest: Any, options: ExtractOptions) -> dict[str, Any]:
    """The entry config a run with these options derives (what its key hashes; no model needed)."""
    return entry_config(options, resolve_precision(options.precision, pick_device(options.device)), manifest)


def _fingerprint_difference(manifest: Any, modality: str, unit_ids: list[str], expected: dict[str, str],
                            cache_root: Path) -> list[str]:
    """'unit: client <fp>, worker <fp>' for each unit whose fingerprint differs (or is missing)."""
    units = [u for u in manifest.of_kind(get_modality(modality).unit_kind) if u.unit_id in set(unit_ids)]
    seen, _ = unit_fingerprints(units, manifest.videos, modality, memo_for(cache_root))
    return [f"{uid}: client {expected.get(uid, 'none')}, worker {seen.get(uid, 'none')}"
            for uid in unit_ids if seen.get(uid) != expected.get(uid)]


def check_checkpoints(opts: ExtractOptions) -> None:
    """Load each checkpoint as the workers will (safely unless trusted), raising CheckpointError for
    one the loader refuses; nothing is kept and no backbone is built."""
    from migue.extractors.checkpoints import read_checkpoint

    for path in opts.checkpoints:
        read_checkpoint(path, opts.trust_checkpoint)


def backbone_builds() -> int:
    """How many times this worker built a backbone (for tests: once per worker and options)."""
    return int(_WORKER_STATE.get("builds", 0))


def extract_distributed(manifest: Any, data_root: Path | Sequence[Path], layout: str, window: int, store: FeatureStore,
                        opts: ExtractOptions, scheduler: str | None, workers: int) -> ExtractReport:
    """Extract every pending unit with chunk tasks on a Dask cluster; same cache as a local run."""
    from dask.distributed import as_completed
    from tqdm import tqdm

    mod = get_modality(opts.modality)
    chunks = chunks_of(manifest.of_kind(mod.unit_kind), opts.shard_size)
    # The entry is named from the options alone (no backbone is built here).
    precision = resolve_precision(opts.precision, pick_device(opts.device))
    if not store.entry_dir(entry_config(opts, precision, manifest)).is_dir():
        check_checkpoints(opts)  # a new entry: a checkpoint the loader refuses stops here, before it exists
    writer = open_entry(manifest, store, opts, precision)
    expected_key = read_index(writer.dir)["key"]
    current, _ = unit_fingerprints(manifest.of_kind(mod.unit_kind), manifest.videos, opts.modality,
                                   memo_for(store.root))
    with EntryReader(writer.dir) as reader:
        published = dict(zip(reader.units["unit_id"], reader.units.get("fingerprint", [""] * len(reader.units))))
    done = {uid for uid, fp in published.items() if current.get(uid) == fp}  # changed inputs: redo
    todo = [[u.unit_id for u in chunk] for chunk in chunks if any(u.unit_id not in done for u in chunk)]
    report = ExtractReport(writer.dir, len(done), 0, random_weights=not opts.checkpoints)
    log.info("%s: %d chunks of %d units to extract on Dask", opts.modality, len(todo), opts.shard_size)
    if not todo:
        return report
    payload = {**asdict(opts), "checkpoints": list(opts.checkpoints)}
    with connect(scheduler, workers) as client:
        resources = gpu_resources(client) or None
        roots = [str(r) for r in as_roots(data_root)]  # the workers read the same folders
        futures = [client.submit(_extract_chunk, roots, layout, window, str(store.root), payload,
                                 ids, expected_key, {u: current[u] for u in ids if u in current},
                                 key=f"extract-{opts.modality}-{ids[0]}", resources=resources, pure=False)
                   for ids in todo]
        for future in tqdm(as_completed(futures), total=len(futures), desc=f"extract {opts.modality}",
                           unit="chunk", disable=None):
            result = future.result()
            if result["key"] != expected_key:  # the client checks too: never count another entry's work
                raise WorkerMismatchError(f"a task wrote entry {result['key'][:12]} ({result['entry']}), the "
                                          f"client computed {expected_key[:12]} ({writer.dir})")
            report.extracted += result["extracted"]
            report.failures.update(result["failures"])
    return report
