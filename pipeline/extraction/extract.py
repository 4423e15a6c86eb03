"""Stage one: run a frozen backbone over the manifest's units and publish tokens to the cache.

Video modalities go to the one-pass engine (`onepass.py`: each video decoded once for all its
units). The loop here (pose): the modality's units not yet cached are cut into fixed chunks (one shard each, the
same in every run); a chunk is claimed when the loader reaches it (`cache.ChunkPublisher`),
its units are decoded (`unit_inputs`) and forwarded batch by batch, and the finished chunk is
published in the background. Chunks another live run holds are waited for, then whatever
they left is done here.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from migue.cache import ChunkPublisher, EntryWriter, FeatureStore, chunk_name
from migue.cache.writer import disk_full
from migue.common.devices import pick_device
from migue.pipeline.datasets.manifest import Manifest, Unit

from .backbone import build_model, entry_config, forward, resolve_precision
from .batching import resolve_batch_size
from .modalities import Modality, get_modality
from .onepass import single as one_pass
from .options import ExtractOptions, ExtractReport
from .unit_inputs import UnitInputs, collate, parse_skeletons, worker_init
from .work import ShardBuffer, chunks_of, finite_only, pending_units, unproduced

log = logging.getLogger("migue.extract")

__all__ = ["ExtractOptions", "ExtractReport", "extract", "open_entry"]


def extract(manifest: Manifest, store: FeatureStore, opts: ExtractOptions, only: set[str] | None = None,
            model: torch.nn.Module | None = None) -> ExtractReport:
    """Extract every pending unit of the modality into its cache entry; resumable.

    `only` restricts the work to these unit ids (a Dask task's chunk); `model` is a backbone
    already built by `build_model(opts)` (a Dask worker keeps one for all its tasks)."""
    mod = get_modality(opts.modality)
    if mod.one_pass:  # video modalities: the one-pass decoding engine
        return one_pass(manifest, store, opts, only, model)
    device = pick_device(opts.device)
    precision = resolve_precision(opts.precision, device)
    config = entry_config(opts, precision, manifest)
    if model is None and not store.entry_dir(config).is_dir():
        model = build_model(opts)  # a new entry: a checkpoint the loader refuses stops here, before it exists
    writer = store.writer(config)
    units, report = pending_units(manifest, store, writer, opts, only)
    if units:
        _extract_units(manifest, store, opts, mod, writer, units, model, device, precision, report)
        report.failures.update(unproduced({u.unit_id for u in units}, writer.done_units(), report.failures,
                                          f"{opts.modality} extraction loop"))
    report.batch_size = report.batch_size or opts.batch_size
    writer.record_failures(report.failures)
    return report


def open_entry(manifest: Manifest, store: FeatureStore, opts: ExtractOptions, precision: str) -> EntryWriter:
    """The writer of the entry these options fill (created if new); no model is built."""
    return store.writer(entry_config(opts, precision, manifest))


def _extract_units(manifest: Manifest, store: FeatureStore, opts: ExtractOptions, mod: Modality,
                   writer: EntryWriter, units: list[Unit], model: torch.nn.Module | None,
                   device: torch.device, precision: str, report: ExtractReport) -> None:
    """Decode, forward and publish `units` (all pending), chunk by chunk, into `writer`'s entry."""
    parsed_dir = store.root / "parsed"
    if mod.reads_skeleton:
        try:
            units = parse_skeletons(units, manifest.videos, parsed_dir, report.failures)
        except OSError as exc:  # only ENOSPC gets here
            raise disk_full(writer.dir, exc, what=f"keeping parsed skeletons under {parsed_dir}") from exc
    model = (model or build_model(opts)).to(device)
    dataset = UnitInputs(units, manifest.videos, mod, mod.input_config(opts), parsed_dir)
    sample = dataset.first_input() if device.type == "cuda" and not opts.batch_size else None
    batch_size = report.batch_size = resolve_batch_size(opts, model, device, precision, sample)
    by_id = {u.unit_id: u for u in units}
    chunks = [[u.unit_id for u in c] for c in chunks_of(manifest.of_kind(mod.unit_kind), opts.shard_size)]
    with ChunkPublisher(writer, chunks) as publisher, tqdm(
            total=len(units), desc=f"extract {opts.modality}", unit="unit", disable=None) as bar:
        todo = list(range(len(chunks)))
        while todo:
            batches = _ClaimedBatches(publisher, todo, {u.unit_id: i for i, u in enumerate(units)}, batch_size)
            shard, chunk = ShardBuffer(), None
            for ids, batch, failed in _loader(dataset, batches, opts, device):
                now = batches.chunk_of[(ids or list(failed))[0]]
                if now != chunk:  # batches come chunk by chunk: the previous one is complete
                    if chunk is not None:
                        publisher.publish(chunk, shard.columns(), shard.streams)
                    shard, chunk = ShardBuffer(), now
                report.failures.update(failed)
                bar.update(len(failed) + len(ids))
                publisher.raise_failed()
                if batch is not None:
                    _forward_batch(model, batch, ids, device, precision, by_id, shard, report)
                    if log.isEnabledFor(logging.DEBUG):  # kill_test.py reads it; no hashing otherwise
                        log.debug("forwarded %d units of %s", len(ids), chunk_name(chunks[now]))
            if chunk is not None:
                publisher.publish(chunk, shard.columns(), shard.streams)
            publisher.finish()
            todo = publisher.busy  # chunks another live run held: wait for it, then see what is left
            if todo:
                log.info("%d chunks were held by another run: waiting for it to publish or die", len(todo))
                publisher.wait_for(todo[0])


def _forward_batch(model: torch.nn.Module, batch: torch.Tensor, ids: list[str], device: torch.device,
                   precision: str, by_id: dict[str, Unit], shard: "ShardBuffer", report: ExtractReport) -> None:
    """Forward one batch into the chunk's shard; a batch that breaks the model fails its units only."""
    try:
        outputs = forward(model, batch, device, precision)
    except Exception as exc:
        report.failures.update({uid: f"forward failed: {exc}" for uid in ids})
        return
    ids, outputs, bad = finite_only(ids, outputs)
    report.failures.update(bad)
    if not ids:
        return
    shard.add([by_id[uid] for uid in ids], outputs)
    report.extracted += len(ids)


def _loader(dataset: UnitInputs, batches: "_ClaimedBatches", opts: ExtractOptions,
            device: torch.device) -> DataLoader:
    return DataLoader(dataset, batch_sampler=batches, num_workers=opts.workers, collate_fn=collate,
                      worker_init_fn=worker_init, prefetch_factor=4 if opts.workers else None,
                      persistent_workers=False,
                      # never fork a process that has initialised CUDA
                      multiprocessing_context="forkserver" if device.type == "cuda" and opts.workers else None)


class _ClaimedBatches:
    """Batch sampler over chunks: claims a chunk when the loader reaches it, then yields batches
    (dataset rows) of its units still unpublished."""

    def __init__(self, publisher: ChunkPublisher, todo: list[int], position: dict[str, int],
                 batch_size: int) -> None:
        self.publisher, self.todo, self.position, self.batch_size = publisher, todo, position, batch_size
        self.chunk_of = {uid: k for k, chunk in enumerate(publisher.chunks) for uid in chunk}

    def __iter__(self) -> Iterator[list[int]]:
        for _, left in self.publisher.claim(self.todo, set(self.position)):
            rows = [self.position[u] for u in left]
            for start in range(0, len(rows), self.batch_size):
                yield rows[start:start + self.batch_size]


