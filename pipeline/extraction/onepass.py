"""Stage one for the video modalities (rgb, context, face): each long video decoded once.

One pass claims the pending chunks of every requested modality video by video, asks the
decoding workers (`decode_pool`) for every unit's input of that video at once, and forwards
each modality's units in the same batches a separate run makes: a chunk's pending units in
chunk order, cut every batch size (so each entry is bit-identical to a one-modality run at the
same batch size). A video with nothing pending in any requested modality is never opened.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from migue.cache import FeatureStore, WorkClaims, chunk_name
from migue.cache.claims import Claim
from migue.cache.publish import publish_claimed, raise_failed
from migue.cache.units import unit_columns
from migue.cache.writer import disk_full
from migue.common.devices import pick_device
from migue.pipeline.datasets.manifest import Manifest, Unit

from .backbone import build_model, entry_config, forward, resolve_precision
from .batching import resolve_batch_size
from .decode_pool import DecodePool, DecodeTotals, UnitInput
from .decode_worker import UnitRequest, VideoJob
from .options import ExtractOptions, ExtractReport
from .work import ShardBuffer, chunks_of, finite_only, pending_units, unproduced
from .inputs import InputConfig, clip_takes, face_takes
from .modalities import MODALITIES, get_modality
from .unit_inputs import parse_skeletons

log = logging.getLogger("migue.extract")

VIDEO_MODALITIES = tuple(m.name for m in MODALITIES.values() if m.one_pass)  # rgb, context, face


@dataclass
class _Chunk:
    """A claimed chunk: its pending units in chunk order, their inputs as they arrive."""

    claim: Claim
    rows: list[Unit]
    inputs: dict[str, np.ndarray | None] = field(default_factory=dict)
    next_row: int = 0
    buffer: ShardBuffer = field(default_factory=ShardBuffer)

    def __post_init__(self) -> None:
        self.row_ids = {u.unit_id for u in self.rows}


class _ModalityRun:
    """One modality's entry, model, chunks and claims during a pass."""

    def __init__(self, manifest: Manifest, store: FeatureStore, opts: ExtractOptions, only: set[str] | None,
                 model: torch.nn.Module | None, device: torch.device) -> None:
        self.opts, self.device = opts, device
        self.precision = resolve_precision(opts.precision, device)
        self.model = model or build_model(opts)
        self.cfg = get_modality(opts.modality).input_config(opts)
        self.writer = store.writer(entry_config(opts, self.precision, manifest))
        units, self.report = pending_units(manifest, store, self.writer, opts, only)
        self.pending = {u.unit_id: u for u in units}
        self.asked = set(self.pending)  # each ends published or failed (`account`)
        kind = get_modality(opts.modality).unit_kind
        self.chunks = [[u.unit_id for u in c] for c in chunks_of(manifest.of_kind(kind), opts.shard_size)]
        self.chunk_of = {uid: k for k, chunk in enumerate(self.chunks) for uid in chunk}
        self.claims = WorkClaims(self.writer.dir)
        self.open: dict[int, _Chunk] = {}
        self.busy: set[int] = set()
        self.batch_size = opts.batch_size

    def claim_for(self, units: list[Unit]) -> list[Unit]:
        """Claim the chunks of these pending units (once each); the units this run now computes."""
        mine = []
        for k in sorted({self.chunk_of[u.unit_id] for u in units}):
            if k not in self.open and k not in self.busy:
                self._claim(k)
        for u in units:
            chunk = self.open.get(self.chunk_of[u.unit_id])
            if chunk is not None and u.unit_id in chunk.row_ids:
                mine.append(u)
        return mine

    def _claim(self, k: int) -> None:
        claim = self.claims.try_claim(chunk_name(self.chunks[k]), self.chunks[k])  # names its units to readers
        if claim is None:  # another live run computes it: wait for it after this pass
            self.busy.add(k)
            return
        done = self.writer.done_units()  # read after claiming: another run may have published it
        rows = [self.pending[u] for u in dict.fromkeys(self.chunks[k]) if u in self.pending and u not in done]
        if not rows:
            claim.release()
            self.busy.discard(k)
            self.open[k] = _Chunk(claim, [])  # nothing to do; closed by the next deliver()
            return
        self.open[k] = _Chunk(claim, rows)

    def deliver(self, uid: str, array: np.ndarray | None, error: str | None) -> None:
        chunk = self.open[self.chunk_of[uid]]
        chunk.inputs[uid] = array
        if error:
            self.report.failures[uid] = error

    def account(self) -> None:
        """Fail, with a reason naming it, every unit asked for that is neither published nor failed."""
        self.report.failures.update(unproduced(self.asked, self.writer.done_units(), self.report.failures,
                                               "one-pass engine"))


class _Pass:
    """Forwarding and publishing for every modality of one pass (the model process side)."""

    def __init__(self, runs: dict[str, _ModalityRun], bar: tqdm) -> None:
        self.runs, self.bar = runs, bar
        self.publisher = ThreadPoolExecutor(max_workers=1)  # shard writes off the critical path
        self.pending: list[Future] = []

    def take(self, item: UnitInput) -> None:
        modality, uid = item.key
        run = self.runs[modality]
        run.deliver(uid, item.array, item.error)
        if item.error:
            self.bar.update(1)
        self.advance(run, run.chunk_of[uid])

    def advance(self, run: _ModalityRun, k: int) -> None:
        """Forward every batch of chunk k whose units have all arrived; publish a finished chunk."""
        chunk = run.open[k]
        if run.batch_size is None:
            sample = next((a for a in chunk.inputs.values() if a is not None), None)
            if sample is None and len(chunk.inputs) < len(chunk.rows):
                return
            run.batch_size = resolve_batch_size(run.opts, run.model, run.device, run.precision, sample)
        while chunk.next_row < len(chunk.rows):
            rows = chunk.rows[chunk.next_row:chunk.next_row + run.batch_size]
            if any(u.unit_id not in chunk.inputs for u in rows):
                return
            chunk.next_row += len(rows)
            self._forward(run, chunk, [u for u in rows if chunk.inputs[u.unit_id] is not None])
        del run.open[k]
        self.pending.append(self.publisher.submit(publish_claimed, run.writer, chunk.claim,
                                                  unit_columns(chunk.buffer.units), chunk.buffer.streams))
        raise_failed(self.pending)

    def _forward(self, run: _ModalityRun, chunk: _Chunk, units: list[Unit]) -> None:
        if not units:
            return
        batch = torch.from_numpy(np.stack([chunk.inputs.pop(u.unit_id) for u in units]))
        try:
            outputs = forward(run.model, batch, run.device, run.precision)
        except Exception as exc:  # a batch that breaks the model fails its units only
            run.report.failures.update({u.unit_id: f"forward failed: {exc}" for u in units})
        else:
            ids, outputs, bad = finite_only([u.unit_id for u in units], outputs)
            run.report.failures.update(bad)
            if ids:
                chunk.buffer.add([u for u in units if u.unit_id in set(ids)], outputs)
                run.report.extracted += len(ids)
        self.bar.update(len(units))

    def finish(self) -> None:
        """After the last input: a unit of a claimed chunk whose input never came is failed with a
        reason naming it, and the rest of its chunk is forwarded and published (nothing waits for
        an input that cannot arrive, and no unit leaves the pass unaccounted for)."""
        for run in self.runs.values():
            for k, chunk in list(run.open.items()):
                if not chunk.rows:
                    run.open.pop(k).claim.release()
                    continue
                for u in chunk.rows:
                    if u.unit_id not in chunk.inputs and u.unit_id not in run.report.failures:
                        run.deliver(u.unit_id, None, f"unit {u.unit_id}: the one-pass engine never produced "
                                    f"its input (decoding video {u.video_id} ended without it); extract "
                                    "again to retry")
                        self.bar.update(1)
                    chunk.inputs.setdefault(u.unit_id, None)
                self.advance(run, k)

    def close(self, ok: bool) -> None:
        try:
            if ok:
                for future in self.pending:
                    future.result()
        finally:
            self.publisher.shutdown(wait=True)
            for run in self.runs.values():
                for chunk in run.open.values():
                    chunk.claim.release()
                run.open = {}


def extract_videos(manifest: Manifest, store: FeatureStore, options: list[ExtractOptions],
                   only: set[str] | None = None, built: dict[str, torch.nn.Module] | None = None,
                   mode: str | None = None) -> dict[str, ExtractReport]:
    """Extract every pending unit of these video modalities, decoding each video once; resumable.

    `only` restricts the work to these unit ids; `built` holds backbones already built per
    modality; `mode` forces 'seek' or 'stream' for every video (tests, benchmarks)."""
    for opts in options:
        if opts.modality not in VIDEO_MODALITIES:
            raise ValueError(f"{opts.modality!r} is not a video modality ({', '.join(VIDEO_MODALITIES)})")
    device = pick_device(options[0].device)
    workers = options[0].workers
    runs = {o.modality: _ModalityRun(manifest, store, o, only, (built or {}).get(o.modality), device)
            for o in options}
    parsed_dir = store.root / "parsed"
    if "face" in runs and runs["face"].pending:
        face = runs["face"]
        try:
            kept = parse_skeletons(list(face.pending.values()), manifest.videos, parsed_dir, face.report.failures)
        except OSError as exc:  # only ENOSPC gets here
            raise disk_full(face.writer.dir, exc, what=f"keeping parsed skeletons under {parsed_dir}") from exc
        face.pending = {u.unit_id: u for u in kept}
    totals = DecodeTotals()
    # The decoding workers start (fork server, fresh interpreters) before the parent touches CUDA.
    with DecodePool(workers) as pool:
        for run in runs.values():
            run.model = run.model.to(device)
        while any(run.pending for run in runs.values()):
            _one_pass(manifest, runs, pool, parsed_dir, mode)
            totals.videos.extend(pool.totals.videos)
            pool.totals = DecodeTotals()
            busy = [(run, k) for run in runs.values() for k in sorted(run.busy)]
            if not busy:
                break
            log.info("%d chunks were held by another run: waiting for it to publish or die", len(busy))
            run, k = busy[0]
            WorkClaims(run.writer.dir).wait(chunk_name(run.chunks[k]))
            for run in runs.values():
                done = run.writer.done_units()
                run.pending = {uid: u for uid, u in run.pending.items()
                               if uid not in done and uid not in run.report.failures}
                run.busy = set()
        totals.start_method = pool.start_method if pool.workers else "in-process"
        totals.worker_parents = set(pool.worker_parents)
    for run in runs.values():
        run.account()
        run.writer.record_failures(run.report.failures)
        run.report.decode, run.report.batch_size = totals, run.batch_size
    return {m: run.report for m, run in runs.items()}


def _one_pass(manifest: Manifest, runs: dict[str, _ModalityRun], pool: DecodePool, parsed_dir: Path,
              mode: str | None) -> None:
    total = sum(len(run.pending) for run in runs.values())
    names = ",".join(runs)
    with tqdm(total=total, desc=f"extract {names}", unit="unit", disable=None) as bar:
        step = _Pass(runs, bar)
        ok = False
        try:
            for item in pool.decode(_jobs(manifest, runs, parsed_dir, mode, step)):
                step.take(item)
            step.finish()
            ok = True
        finally:
            step.close(ok)
    for run in runs.values():
        run.pending = {uid: u for uid, u in run.pending.items() if run.chunk_of[uid] in run.busy}


def _jobs(manifest: Manifest, runs: dict[str, _ModalityRun], parsed_dir: Path, mode: str | None,
          step: _Pass) -> Iterator[VideoJob]:
    """One job per video with anything pending: claims its chunks, names every unit's takes."""
    by_video: dict[str, dict[str, list[Unit]]] = {}
    for modality, run in runs.items():
        for u in sorted(run.pending.values(), key=lambda u: (u.video_id, u.start, u.unit_id)):
            by_video.setdefault(u.video_id, {}).setdefault(modality, []).append(u)
    for vid in sorted(by_video):
        video = manifest.videos[vid]
        requests: list[UnitRequest] = []
        for modality, units in by_video[vid].items():
            run = runs[modality]
            for u in run.claim_for(units):
                try:
                    requests.append(UnitRequest((modality, u.unit_id), _takes(modality, u, video, run.cfg,
                                                                               parsed_dir)))
                except Exception as exc:  # no video file, an unreadable skeleton: this unit only
                    step.take(UnitInput((modality, u.unit_id), None, f"{type(exc).__name__}: {exc}"))
            for k in [k for k, c in run.open.items() if not c.rows]:  # claimed, nothing left to do
                run.open.pop(k).claim.release()
        if requests:
            yield VideoJob(vid, str(video.video_path), video.width, video.height, tuple(requests), mode)


def _takes(modality: str, unit: Unit, video: Any, cfg: InputConfig, parsed_dir: Path) -> tuple:
    if video.video_path is None:
        raise FileNotFoundError(f"video {video.video_id}: no video file")
    if modality == "face":
        return face_takes(unit, video, cfg, parsed_dir)
    return clip_takes(unit, video, cfg)


def single(manifest: Manifest, store: FeatureStore, opts: ExtractOptions, only: set[str] | None,
           model: torch.nn.Module | None) -> ExtractReport:
    """One video modality through the one-pass engine (what `extract()` runs for it)."""
    return extract_videos(manifest, store, [opts], only, {opts.modality: model} if model else None)[opts.modality]

