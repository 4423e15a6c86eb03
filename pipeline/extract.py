"""Stage one: run a frozen backbone over the manifest's units and publish tokens to the cache."""
from __future__ import annotations

import contextlib
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

from migue.cache import DuplicateUnitsError, EntryWriter, FeatureStore, file_sha256
from migue.extractors.registry import create_extractor
from migue.extractors.skeleton_layouts import get_layout

from .inputs import InputConfig, face_crops, pose_clip, rgb_clip, skeleton_of
from .manifest import Manifest, Unit, Video

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
    batch_size: int = 4
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 autocast on CUDA, float32 on CPU
    checkpoints: tuple[str, ...] = ()
    trust_checkpoint: bool = False
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
    model = create_extractor(mod.extractor, checkpoint=checkpoint,
                             trust_checkpoint=opts.trust_checkpoint, **kwargs)
    if opts.checkpoints:
        weights = {"files": [Path(p).name for p in opts.checkpoints],
                   "sha256": [file_sha256(p) for p in opts.checkpoints]}
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


def extract(manifest: Manifest, store: FeatureStore, opts: ExtractOptions) -> ExtractReport:
    """Extract every pending unit of the modality into its cache entry; resumable."""
    if opts.modality not in MODALITIES:
        raise ValueError(f"unknown modality {opts.modality!r}; known: {sorted(MODALITIES)}")
    mod = MODALITIES[opts.modality]
    device = resolve_device(opts.device)
    precision = resolve_precision(opts.precision, device)
    model, cfg, weights = build_model(opts)
    config = entry_config(opts, model, cfg, weights, precision, manifest)
    writer = store.writer(config)
    done = writer.done_units()
    units = sorted((u for u in manifest.of_kind(mod.unit_kind) if u.unit_id not in done),
                   key=lambda u: (u.video_id, u.start))
    report = ExtractReport(writer.dir, len(done), 0, random_weights=not opts.checkpoints)
    log.info("%s: %d units in the manifest, %d already cached, %d to extract -> %s",
             opts.modality, len(done) + len(units), len(done), len(units), writer.dir)
    if not units:
        return report
    parsed_dir = store.root / "parsed"
    if opts.modality in ("pose", "face"):
        units = _parse_skeletons(units, manifest.videos, parsed_dir, report.failures)
    model = model.to(device)
    loader = DataLoader(UnitInputs(units, manifest.videos, opts.modality, cfg, parsed_dir),
                        batch_size=opts.batch_size, num_workers=opts.workers, collate_fn=_collate,
                        worker_init_fn=_worker_init, prefetch_factor=4 if opts.workers else None,
                        persistent_workers=False)
    by_id = {u.unit_id: u for u in units}
    with ThreadPoolExecutor(max_workers=1) as pool, tqdm(total=len(units), desc=f"extract {opts.modality}",
                                                        unit="unit", disable=None) as bar:
        buffer = _ShardBuffer()
        pending: list[Future] = []
        for ids, batch, failed in loader:
            report.failures.update(failed)
            bar.update(len(failed))
            if batch is None:
                continue
            try:
                outputs = _forward(model, batch, device, precision)
            except Exception as exc:  # a batch that breaks the model fails its units only
                report.failures.update({uid: f"forward failed: {exc}" for uid in ids})
                bar.update(len(ids))
                continue
            buffer.add([by_id[uid] for uid in ids], outputs)
            report.extracted += len(ids)
            bar.update(len(ids))
            if len(buffer) >= opts.shard_size:
                pending.append(pool.submit(_publish, writer, buffer))  # written off the critical path
                buffer = _ShardBuffer()
        if len(buffer):
            pending.append(pool.submit(_publish, writer, buffer))
        for future in pending:
            future.result()
    writer.record_failures(report.failures)
    return report


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
        rows = [asdict(u) for u in self.units]
        return {key: [r[key] for r in rows] for key in rows[0]}


def _publish(writer: EntryWriter, buffer: _ShardBuffer) -> None:
    try:
        writer.write(buffer.columns(), buffer.streams)
    except DuplicateUnitsError as exc:  # a concurrent run published them first: nothing lost
        log.info("skipped a shard: %s", exc)


def _parse_skeletons(units: list[Unit], videos: dict[str, Video], parsed_dir: Path,
                     failures: dict[str, str]) -> list[Unit]:
    """Parse each needed skeleton sheet once (kept by hash); units of unreadable ones fail."""
    needed = sorted({u.video_id for u in units})
    bad: dict[str, str] = {}
    for vid in tqdm(needed, desc="read skeletons", unit="video", disable=None):
        try:
            skeleton_of(videos[vid], parsed_dir)
        except Exception as exc:
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
