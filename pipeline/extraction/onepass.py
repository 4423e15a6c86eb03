"""Stage one's executor: a `Plan` run with each video decoded once for every requested modality.

One pass claims the pending chunks of every entry of the plan video by video, asks the decoding
workers (`decode_pool`) for every decoded unit's input of that video at once (the row's `takes`),
computes the inputs of rows that need no decoding (pose, from the skeleton parsed once for pose
and face) in this process, and forwards each entry's units in the same batches a separate run
makes: a chunk's pending units in chunk order, cut every batch size (so each entry is
bit-identical to a one-modality run at the same batch size). A video with nothing pending in any
entry is never opened. No code here knows a modality by name: the rows say how.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from migue.cache import EntryWriter, FeatureStore, WorkClaims, chunk_name
from migue.cache.claims import Claim
from migue.cache.files import part_of
from migue.cache.publish import publish_claimed, raise_failed
from migue.cache.units import unit_columns
from migue.cache.diskfull import disk_full
from migue.common.devices import pick_device
from migue.pipeline.datasets.manifest import Manifest, Unit

from .backbone import build_model, forward, resolve_precision
from .batching import resolve_batch_size
from .decode_pool import DecodePool, DecodeTotals, UnitInput
from .decode_worker import UnitRequest, VideoJob
from .options import ExtractOptions, ExtractReport
from .plan import EntryPlan, Plan, plan_extraction, request
from .summary import ExtractSummary, Progress
from .work import ShardBuffer, finite_only, unproduced
from .unit_inputs import parse_videos

log = logging.getLogger("migue.extract")


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

    def __init__(self, plan: EntryPlan, store: FeatureStore, model: torch.nn.Module | None,
                 device: torch.device) -> None:
        self.name, self.mod, self.opts, self.device = plan.name, plan.request.modality, plan.request.options, device
        self.precision = resolve_precision(self.opts.precision, device)
        self.model = model or build_model(self.opts)
        self.cfg = self.mod.input_config(self.opts)
        self.writer: EntryWriter = store.writer(dict(plan.config))
        self.report = plan.report()
        self.pending = {u.unit_id: u for u in plan.pending}
        self.asked = set(self.pending)  # each ends published or failed (`account`)
        self.chunks = [list(c) for c in plan.chunks]
        self.chunk_of = {uid: k for k, chunk in enumerate(self.chunks) for uid in chunk}
        self.claims = WorkClaims(self.writer.dir)
        self.open: dict[int, _Chunk] = {}
        self.busy: set[int] = set()
        self.batch_size = self.opts.batch_size

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

    def __init__(self, runs: dict[str, _ModalityRun], bar: tqdm, progress: Progress) -> None:
        self.runs, self.bar, self.progress = runs, bar, progress
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
        self.progress.published(run.name, len(chunk.rows))
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
            if log.isEnabledFor(logging.DEBUG):  # kill_test.py reads it; no hashing otherwise
                log.debug("forwarded %d units of %s", len(units), chunk_name(run.chunks[run.chunk_of[units[0].unit_id]]))
        self.bar.update(len(units))
        self.progress.forwarded(len(units))

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


def execute_plan(plan: Plan, store: FeatureStore, built: dict[str, torch.nn.Module] | None = None,
                 mode: str | None = None, workers: int | None = None) -> "ExtractRun":
    """Compute every pending unit of the plan, decoding each video once for all its entries and
    parsing each skeleton once for all the entries reading it; resumable.

    `built` holds backbones already built per entry name (a Dask worker keeps them); `mode`
    forces 'seek' or 'stream' for every video (tests, benchmarks); `workers` decoding processes
    (default: the first request's option; 0 decodes in this process)."""
    t0 = time.perf_counter()
    if not plan.entries:
        return ExtractRun({}, ExtractSummary())
    if plan.manifest is None:
        raise ValueError("a plan without its manifest cannot be executed")
    manifest = plan.manifest
    first = plan.entries[0].request.options
    device = pick_device(first.device)
    workers = first.workers if workers is None else workers
    runs = {e.name: _ModalityRun(e, store, (built or {}).get(e.name), device) for e in plan.entries}
    parsed_dir = store.root / "parsed"
    _parse_shared_skeletons(manifest, runs, parsed_dir)
    totals, needed = DecodeTotals(), [0]
    progress = Progress(sum(len(r.pending) for r in runs.values()))
    decodes = any(run.mod.takes and run.pending for run in runs.values())
    # The decoding workers start (fork server, fresh interpreters) before the parent touches CUDA.
    with DecodePool(workers if decodes else 0) as pool:
        for run in runs.values():
            run.model = run.model.to(device)
        while any(run.pending for run in runs.values()):
            _one_pass(manifest, runs, pool, parsed_dir, mode, needed, progress)
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
    reports = {name: run.report for name, run in runs.items()}
    summary = ExtractSummary(totals.frames_decoded, needed[0], len(totals.videos),
                             {n: r.extracted for n, r in reports.items()},
                             {n: len(r.failures) for n, r in reports.items()}, time.perf_counter() - t0)
    return ExtractRun(reports, summary)


@dataclass
class ExtractRun:
    """What executing a plan did: a report per entry, and the summary line's figures."""

    reports: dict[str, ExtractReport]
    summary: ExtractSummary


def _parse_shared_skeletons(manifest: Manifest, runs: dict[str, _ModalityRun], parsed_dir: Path) -> None:
    """Parse each pending video's skeleton once for every entry that reads skeletons; the units
    of one that cannot be read fail (in every such entry) with the reason."""
    readers = [run for run in runs.values() if run.mod.reads_skeleton and run.pending]
    content = {u.video_id: part_of(u.fingerprint, "skeleton") for run in readers for u in run.pending.values()}
    if not content:
        return
    try:
        bad = parse_videos(content, manifest.videos, parsed_dir)
    except OSError as exc:  # only ENOSPC gets here
        raise disk_full(readers[0].writer.dir, exc, what=f"keeping parsed skeletons under {parsed_dir}") from exc
    for run in readers:
        run.report.failures.update({uid: bad[u.video_id] for uid, u in run.pending.items() if u.video_id in bad})
        run.pending = {uid: u for uid, u in run.pending.items() if u.video_id not in bad}


def extract_videos(manifest: Manifest, store: FeatureStore, options: Sequence[ExtractOptions],
                   only: set[str] | None = None, built: dict[str, torch.nn.Module] | None = None,
                   mode: str | None = None) -> dict[str, ExtractReport]:
    """Plan and execute these options' modalities in one pass (a report per modality)."""
    plan = plan_extraction(manifest, store, [request(o) for o in options], only)
    return execute_plan(plan, store, built, mode).reports


def _one_pass(manifest: Manifest, runs: dict[str, _ModalityRun], pool: DecodePool, parsed_dir: Path,
              mode: str | None, needed: list[int], progress: Progress) -> None:
    total = sum(len(run.pending) for run in runs.values())
    names = ",".join(runs)
    with tqdm(total=total, desc=f"extract {names}", unit="unit", disable=None) as bar:
        step = _Pass(runs, bar, progress)
        ok = False
        try:
            for item in pool.decode(_jobs(manifest, runs, parsed_dir, mode, step, needed)):
                step.take(item)
            step.finish()
            ok = True
        finally:
            step.close(ok)
    for run in runs.values():
        run.pending = {uid: u for uid, u in run.pending.items() if run.chunk_of[uid] in run.busy}


def _jobs(manifest: Manifest, runs: dict[str, _ModalityRun], parsed_dir: Path, mode: str | None,
          step: _Pass, needed: list[int]) -> Iterator[VideoJob]:
    """One job per video with anything to decode: claims its chunks, names every decoded unit's
    takes (the row's `takes`) and hands over the inputs computed without decoding (the row's
    `unit_input`). Adds the frames the video's decoded units cover to `needed[0]`."""
    by_video: dict[str, dict[str, list[Unit]]] = {}
    for name, run in runs.items():
        for u in sorted(run.pending.values(), key=lambda u: (u.video_id, u.start, u.unit_id)):
            by_video.setdefault(u.video_id, {}).setdefault(name, []).append(u)
    for vid in sorted(by_video):
        video = manifest.videos[vid]
        requests: list[UnitRequest] = []
        spans: list[tuple[int, int]] = []
        for name, units in by_video[vid].items():
            run = runs[name]
            for u in run.claim_for(units):
                key = (name, u.unit_id)
                try:
                    if run.mod.takes is None:  # no frames: the input comes straight from the row
                        item = UnitInput(key, run.mod.unit_input(u, video, run.cfg, parsed_dir))
                    else:
                        requests.append(UnitRequest(key, run.mod.takes(u, video, run.cfg, parsed_dir)))
                        spans.append((u.start, u.end))
                        continue
                except Exception as exc:  # no video file, an unreadable skeleton: this unit only
                    item = UnitInput(key, None, f"{type(exc).__name__}: {exc}")
                step.take(item)  # outside the try: a failed publish (disk full) stops the run
            for k in [k for k, c in run.open.items() if not c.rows]:  # claimed, nothing left to do
                run.open.pop(k).claim.release()
        if requests:
            needed[0] += frames_needed(spans)
            yield VideoJob(vid, str(video.video_path), video.width, video.height, tuple(requests), mode)


def frames_needed(ranges: Iterable[tuple[int, int]]) -> int:
    """Frames a video's decoded units need: the union of their [start, end] frame ranges (each
    unit's clip or window; a frame two units share, or two modalities' units, counts once)."""
    total, reach = 0, -1
    for first, last in sorted(ranges):
        if last > reach:
            total += last - max(first, reach + 1) + 1
            reach = last
    return total
