"""Stage one: run a frozen backbone over the manifest's units and publish tokens to the cache."""
from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from migue.cache import DuplicateUnitsError, EntryWriter, FeatureStore, WorkClaims, chunk_name, file_sha256
from migue.cache.claims import Claim
from migue.cache.units import unit_columns
from migue.cache.writer import disk_full
from migue.extractors.registry import create_extractor
from migue.extractors.skeleton_layouts import get_layout

from .inputs import InputConfig, face_crops, pose_clip, rgb_clip, skeleton_of
from migue.pipeline.datasets.manifest import Manifest, Unit, Video

log = logging.getLogger("migue.extract")


@dataclass(frozen=True)
class Modality:
    extractor: str
    unit_kind: str  # which units it covers: 'mg' clips or emotion 'window's
    frames: int
    size: int
    resize: str


MODALITIES = {
    "rgb": Modality("mvit", "mg", frames=16, size=224, resize="crop"),
    "context": Modality("mvit", "window", frames=16, size=224, resize="squash"),
    "pose": Modality("agcn", "mg", frames=64, size=0, resize="none"),
    "face": Modality("swinface", "window", frames=8, size=112, resize="face-crop"),
}


@dataclass
class ExtractOptions:
    """Everything `migue extract` can be told; None means the modality's default."""

    modality: str
    arch: str = "small"
    frames: int | None = None
    size: int | None = None
    layout: str = "imigue22"
    batch_size: int | None = None  # None: auto (see resolve_batch_size)
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 autocast on CUDA, float32 on CPU
    checkpoints: tuple[str, ...] = ()
    trust_checkpoint: bool = False
    strict_checkpoint: bool = True  # False: load what fits, warn, leave the rest random
    workers: int = 2
    shard_size: int = 64
    seed: int = 0  # seeds the random weights when no checkpoint is given


@dataclass
class ExtractReport:
    entry: Path
    done_before: int
    extracted: int
    failures: dict[str, str] = field(default_factory=dict)
    random_weights: bool = False


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but torch sees no CUDA device")
    return torch.device(device)


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, not {precision!r}")
    return precision


# CPU: MViTv2 runs slower per clip in larger batches (cache pressure, perf-facts.md); the small
# 2s-AGCN and SwinFace models keep a few units per batch to amortise per-call overhead.
CPU_BATCH = {"rgb": 1, "context": 1, "pose": 4, "face": 4}
CUDA_MEMORY_SHARE = 0.6  # auto batch on CUDA: use at most this share of the free memory
MAX_AUTO_BATCH = 256


def batch_for_memory(free_bytes: int, per_unit_bytes: int, share: float = CUDA_MEMORY_SHARE,
                     cap: int = MAX_AUTO_BATCH) -> int:
    """Units per batch that fit `share` of `free_bytes` at `per_unit_bytes` each, rounded down to
    a power of two (stable across small changes in free memory), between 1 and `cap`."""
    fit = int(share * free_bytes // max(per_unit_bytes, 1))
    return max(1, min(cap, 1 << (fit.bit_length() - 1) if fit >= 1 else 1))


def resolve_batch_size(opts: ExtractOptions, model: torch.nn.Module, device: torch.device, precision: str,
                       sample: np.ndarray | None) -> int:
    """opts.batch_size when given. Auto: CPU_BATCH on CPU; on CUDA as many units as fit in
    CUDA_MEMORY_SHARE of the free memory, measured with a forward of one decoded `sample`."""
    if opts.batch_size:
        return opts.batch_size
    if device.type != "cuda" or sample is None:
        return CPU_BATCH[opts.modality] if device.type != "cuda" else 4
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    _forward(model, torch.from_numpy(sample[None]), device, precision)
    per_unit = torch.cuda.max_memory_allocated(device) - before
    free, _ = torch.cuda.mem_get_info(device)
    batch = batch_for_memory(free, per_unit)
    log.info("%s: batch size %d (one unit peaks at %.0f MB, %.1f GB free on %s)", opts.modality, batch,
             per_unit / 1e6, free / 1e9, torch.cuda.get_device_name(device))
    return batch


def build_model(opts: ExtractOptions) -> tuple[torch.nn.Module, InputConfig, dict[str, Any]]:
    """The frozen extractor, how its inputs are made, and the weights' identity."""
    mod = MODALITIES[opts.modality]
    frames, size = opts.frames or mod.frames, opts.size or mod.size
    torch.manual_seed(opts.seed)  # random weights, when used, are reproducible
    if mod.extractor == "mvit":
        kwargs: dict[str, Any] = {"arch": opts.arch, "frames": frames, "size": size}
        cfg = InputConfig(frames=frames, size=size, resize=mod.resize)
    elif mod.extractor == "agcn":
        kwargs = {"layout": opts.layout, "frames": frames}
        cfg = InputConfig(frames=frames, joints=get_layout(opts.layout).joints)
    else:
        kwargs = {"frames": frames}
        cfg = InputConfig(frames=frames, face_size=size)
    checkpoint = opts.checkpoints[0] if len(opts.checkpoints) == 1 else (list(opts.checkpoints) or None)
    model = create_extractor(mod.extractor, checkpoint=checkpoint, trust_checkpoint=opts.trust_checkpoint,
                             strict_checkpoint=opts.strict_checkpoint, **kwargs)
    if opts.checkpoints:
        weights = {"files": [Path(p).name for p in opts.checkpoints],
                   "sha256": [file_sha256(p) for p in opts.checkpoints]}
        if not opts.strict_checkpoint:  # partly random weights must never share a key with full ones
            reports = getattr(model, "checkpoint_report", None)
            reports = reports if isinstance(reports, list) else [reports]
            weights["non_strict"] = [{"missing": r.missing, "unexpected": r.unexpected,
                                      "mismatched": r.mismatched} for r in reports if r is not None]
            weights["random_init_seed"] = opts.seed  # what the weights left out were seeded with
    else:
        weights = {"random_init_seed": opts.seed}
    return model, cfg, weights


def entry_config(opts: ExtractOptions, model: torch.nn.Module, cfg: InputConfig, weights: dict[str, Any],
                 precision: str, manifest: Manifest) -> dict[str, Any]:
    """Everything that shaped the numbers: this is what the cache key hashes."""
    spec = model.spec.to_dict()  # type: ignore[attr-defined]
    mod = MODALITIES[opts.modality]
    return {
        "modality": opts.modality,
        "backbone": spec["name"],
        "arch": opts.arch if mod.extractor == "mvit" else spec["config"].get("layout", "swin-t"),
        "extractor": spec["config"],
        "streams": spec["streams"],
        "inputs": {**asdict(cfg), "joints": list(cfg.joints)},
        "weights": weights,
        "precision": precision,
        "unit_kind": mod.unit_kind,
        "manifest": manifest.digest(mod.unit_kind),
        "dataset_layout": manifest.layout,
    }


class UnitInputs(Dataset):
    """Decodes one unit's input in a DataLoader worker; a failure is returned, not raised."""

    def __init__(self, units: list[Unit], videos: dict[str, Video], modality: str, cfg: InputConfig,
                 parsed_dir: Path | None) -> None:
        self.units, self.videos, self.modality = units, videos, modality
        self.cfg, self.parsed_dir = cfg, parsed_dir

    def __len__(self) -> int:
        return len(self.units)

    def __getitem__(self, i: int) -> tuple[str, np.ndarray | None, str | None]:
        unit = self.units[i]
        video = self.videos[unit.video_id]
        try:
            if self.modality in ("rgb", "context"):
                x = rgb_clip(unit, video, self.cfg)
            elif self.modality == "pose":
                x = pose_clip(unit, video, self.cfg, self.parsed_dir)
            else:
                x = face_crops(unit, video, self.cfg, self.parsed_dir)
        except Exception as exc:  # one bad unit never loses the others' work
            return unit.unit_id, None, f"{type(exc).__name__}: {exc}"
        return unit.unit_id, x, None


def _collate(items: list[tuple[str, np.ndarray | None, str | None]]) -> tuple[list[str], torch.Tensor | None, dict[str, str]]:
    ok = [(uid, x) for uid, x, err in items if x is not None]
    failed = {uid: err for uid, x, err in items if x is None}
    batch = torch.from_numpy(np.stack([x for _, x in ok])) if ok else None
    return [uid for uid, _ in ok], batch, failed


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # decoding workers must not fight the model for cores


def extract(manifest: Manifest, store: FeatureStore, opts: ExtractOptions, only: set[str] | None = None,
            built: tuple[torch.nn.Module, InputConfig, dict[str, Any]] | None = None) -> ExtractReport:
    """Extract every pending unit of the modality into its cache entry; resumable.

    `only` restricts the work to these unit ids (a Dask task's chunk); `built` is a backbone
    already built by `build_model(opts)` (a Dask worker keeps one for all its tasks)."""
    if opts.modality not in MODALITIES:
        raise ValueError(f"unknown modality {opts.modality!r}; known: {sorted(MODALITIES)}")
    mod = MODALITIES[opts.modality]
    device = resolve_device(opts.device)
    precision = resolve_precision(opts.precision, device)
    model, cfg, weights = built or build_model(opts)
    config = entry_config(opts, model, cfg, weights, precision, manifest)
    writer = store.writer(config)
    done = writer.done_units()
    units = sorted((u for u in manifest.of_kind(mod.unit_kind)
                    if u.unit_id not in done and (only is None or u.unit_id in only)),
                   key=lambda u: (u.video_id, u.start))
    report = ExtractReport(writer.dir, len(done), 0, random_weights=not opts.checkpoints)
    log.info("%s: %d units in the manifest, %d already cached, %d to extract -> %s",
             opts.modality, len(done) + len(units), len(done), len(units), writer.dir)
    if not units:
        return report
    parsed_dir = store.root / "parsed"
    if opts.modality in ("pose", "face"):
        try:
            units = _parse_skeletons(units, manifest.videos, parsed_dir, report.failures)
        except OSError as exc:  # only ENOSPC gets here
            raise disk_full(writer.dir, exc, what=f"keeping parsed skeletons under {parsed_dir}") from exc
    model = model.to(device)
    dataset = UnitInputs(units, manifest.videos, opts.modality, cfg, parsed_dir)
    batch_size = resolve_batch_size(opts, model, device, precision, _first_input(dataset) if
                                    device.type == "cuda" and not opts.batch_size else None)
    by_id = {u.unit_id: u for u in units}
    # Fixed chunks of the whole unit list, one shard each, claimed while computed: concurrent
    # runs split the work, and a unit's batch is the same in every run (same tokens to the bit).
    chunks = [[u.unit_id for u in c] for c in _chunks(manifest.of_kind(mod.unit_kind), opts.shard_size)]
    with ThreadPoolExecutor(max_workers=1) as pool, tqdm(total=len(units), desc=f"extract {opts.modality}",
                                                        unit="unit", disable=None) as bar:
        pending: list[Future] = []
        todo = list(range(len(chunks)))
        while todo:
            batches = _ClaimedBatches(chunks, todo, {u.unit_id: i for i, u in enumerate(units)}, writer,
                                      batch_size)
            loader = DataLoader(dataset, batch_sampler=batches, num_workers=opts.workers, collate_fn=_collate,
                                worker_init_fn=_worker_init, prefetch_factor=4 if opts.workers else None,
                                persistent_workers=False,
                                # never fork a process that has initialised CUDA
                                multiprocessing_context="forkserver" if device.type == "cuda" and opts.workers
                                else None)
            buffer, chunk = _ShardBuffer(), None
            try:
                for ids, batch, failed in loader:
                    now = batches.chunk_of[(ids or list(failed))[0]]
                    if now != chunk:  # batches come chunk by chunk: the previous one is complete
                        if chunk is not None:
                            pending.append(pool.submit(_publish, writer, buffer, batches.take(chunk)))
                        buffer, chunk = _ShardBuffer(), now
                    report.failures.update(failed)
                    bar.update(len(failed))
                    _raise_failed(pending)
                    if batch is None:
                        continue
                    try:
                        outputs = _forward(model, batch, device, precision)
                    except Exception as exc:  # a batch that breaks the model fails its units only
                        report.failures.update({uid: f"forward failed: {exc}" for uid in ids})
                        bar.update(len(ids))
                        continue
                    log.debug("forwarded %d units of %s", len(ids), chunk_name(chunks[chunk]))
                    buffer.add([by_id[uid] for uid in ids], outputs)
                    report.extracted += len(ids)
                    bar.update(len(ids))
                if chunk is not None:  # written off the critical path
                    pending.append(pool.submit(_publish, writer, buffer, batches.take(chunk)))
                for future in pending:
                    future.result()
            finally:
                batches.release()
            todo = batches.busy  # chunks another live run held: wait for it, then see what is left
            if todo:
                log.info("%d chunks were held by another run: waiting for it to publish or die", len(todo))
                WorkClaims(writer.dir).wait(chunk_name(chunks[todo[0]]))
    writer.record_failures(report.failures)
    return report


def _first_input(dataset: "UnitInputs", tries: int = 8) -> np.ndarray | None:
    """One decoded unit (of the first `tries`), to measure what a unit costs on the device."""
    for i in range(min(tries, len(dataset))):
        _, array, _ = dataset[i]
        if array is not None:
            return array
    return None


def _chunks(units: list[Unit], size: int) -> list[list[Unit]]:
    """The kind's units in (video, start) order, cut every `size` units: the same in every run."""
    ordered = sorted(units, key=lambda u: (u.video_id, u.start, u.unit_id))
    return [ordered[i:i + size] for i in range(0, len(ordered), max(1, size))]


class _ClaimedBatches:
    """Batch sampler over chunks: claims a chunk (WorkClaims) when the loader reaches it, then
    yields batches of its units still unpublished; a chunk another live run holds goes to `busy`."""

    def __init__(self, chunks: list[list[str]], todo: list[int], position: dict[str, int],
                 writer: EntryWriter, batch_size: int) -> None:
        self.chunks, self.todo, self.position = chunks, todo, position
        self.writer, self.batch_size = writer, batch_size
        self.claims = WorkClaims(writer.dir)
        self.chunk_of = {uid: k for k, chunk in enumerate(chunks) for uid in chunk}
        self.held: dict[int, Claim] = {}
        self.busy: list[int] = []

    def __iter__(self) -> Iterator[list[int]]:
        for k in self.todo:
            if not any(u in self.position for u in self.chunks[k]):
                continue
            claim = self.claims.try_claim(chunk_name(self.chunks[k]))
            if claim is None:
                self.busy.append(k)
                continue
            done = self.writer.done_units()  # read after claiming: another run may have published it
            rows = [self.position[u] for u in self.chunks[k] if u in self.position and u not in done]
            if not rows:
                claim.release()
                continue
            log.debug("claimed %s: %d units to compute", chunk_name(self.chunks[k]), len(rows))
            self.held[k] = claim
            for start in range(0, len(rows), self.batch_size):
                yield rows[start:start + self.batch_size]

    def take(self, k: int) -> Claim:
        """Hand chunk k's claim to whoever publishes it (and then releases it)."""
        return self.held.pop(k)

    def release(self) -> None:
        for claim in self.held.values():
            claim.release()
        self.held = {}


def _raise_failed(pending: list[Future]) -> None:
    """Stop at once when a publish failed (a full disk), not after computing everything."""
    for future in pending:
        if future.done() and future.exception() is not None:
            future.result()


def _forward(model: torch.nn.Module, batch: torch.Tensor, device: torch.device,
             precision: str) -> dict[str, np.ndarray]:
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16"
                else contextlib.nullcontext())
    with torch.inference_mode(), autocast:
        out = model(batch.to(device, non_blocking=True))
    return {k: v.float().cpu().numpy().astype(np.float16) for k, v in out.items()}


class _ShardBuffer:
    """Units and their per-stream token arrays waiting to become one shard."""

    def __init__(self) -> None:
        self.units: list[Unit] = []
        self.streams: dict[str, list[np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.units)

    def add(self, units: list[Unit], outputs: dict[str, np.ndarray]) -> None:
        self.units.extend(units)
        for name, array in outputs.items():
            self.streams.setdefault(name, []).extend(list(array))

    def columns(self) -> dict[str, list[Any]]:
        return unit_columns(self.units)


def _publish(writer: EntryWriter, buffer: _ShardBuffer, claim: Claim) -> None:
    try:
        if len(buffer):
            path = writer.write(buffer.columns(), buffer.streams)
            log.debug("published %s: %d units as %s", claim.path.stem, len(buffer), path.name)
    except DuplicateUnitsError as exc:  # a concurrent run published them first: nothing lost
        log.info("skipped a shard: %s", exc)
    finally:
        claim.release()


def _parse_skeletons(units: list[Unit], videos: dict[str, Video], parsed_dir: Path,
                     failures: dict[str, str]) -> list[Unit]:
    """Parse each needed skeleton sheet once (kept by hash); units of unreadable ones fail."""
    needed = sorted({u.video_id for u in units})
    bad: dict[str, str] = {}
    for vid in tqdm(needed, desc="read skeletons", unit="video", disable=None):
        try:
            skeleton_of(videos[vid], parsed_dir)
        except Exception as exc:
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:  # the disk, not this file
                raise
            bad[vid] = f"{type(exc).__name__}: {exc}"
    failures.update({u.unit_id: bad[u.video_id] for u in units if u.video_id in bad})
    return [u for u in units if u.video_id not in bad]


def iter_modalities(names: str) -> Iterator[str]:
    for name in names.split(","):
        if name not in MODALITIES:
            raise ValueError(f"unknown modality {name!r}; known: {sorted(MODALITIES)}")
        yield name


def cpu_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
