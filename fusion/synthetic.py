"""Small synthetic cache entries with a planted class signal, for tests and demos.

Tokens are Gaussian noise plus `signal` times a per-class prototype (mg: per MG class;
emotion: per win/lose label, in a fraction of a video's windows), in every stream.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from migue.cache import COLUMN, MG_KIND, NO_LABEL, WINDOW_KIND, EntryReader, FeatureStore, UnitRecord
from migue.cache.units import unit_columns
from migue.cache.labels import MG_CLASS_NAMES
from migue.common.splits import SPLITS


def _spec(grid: tuple[int, ...], dim: int) -> dict:
    return {"tokens": int(np.prod(grid)), "dim": dim, "grid": list(grid)}


def _write(root: Path, modality: str, manifest: str, units: dict, streams: dict, specs: dict,
           shards: int = 2) -> EntryReader:
    """One entry of `modality`, its units split over `shards` shards."""
    config = {"modality": modality, "backbone": "synthetic", "arch": "tiny", "manifest": manifest,
              "streams": specs}
    writer = FeatureStore(root).writer(config)
    n = len(units[COLUMN.unit_id])
    for part in np.array_split(np.arange(n), shards):
        writer.write({k: [v[i] for i in part] for k, v in units.items()},
                     {k: [v[i] for i in part] for k, v in streams.items()})
    return EntryReader(writer.dir)


def _tokens(rng: np.random.Generator, prototype: np.ndarray, length: int, signal: float) -> np.ndarray:
    return (rng.standard_normal((length, prototype.shape[-1])) + signal * prototype).astype(np.float16)


def write_mg(root: Path, per_class: tuple[int, int, int] = (8, 2, 2), num_classes: int = len(MG_CLASS_NAMES),
             dim: int = 16,
             rgb_grid: tuple[int, int, int] = (2, 2, 2), pose_grid: tuple[int, int] = (2, 5),
             signal: float = 0.7, seed: int = 0, drop_pose_units: int = 0) -> dict[str, EntryReader]:
    """'rgb' (tokens, cls) and 'pose' (joint, bone) MG entries; `per_class` clips per class per split.
    drop_pose_units > 0 leaves that many units out of the pose entry (a misaligned pair)."""
    rng = np.random.default_rng(seed)
    protos = {s: rng.standard_normal((num_classes, dim)) for s in ("tokens", "cls", "joint", "bone")}
    records, rows = [], {}  # rows: video -> clips so far (each clip's row in its video's label file)
    for split, count in zip(SPLITS, per_class):
        for c in range(num_classes):
            for k in range(count):
                video, start = f"{split}{k % 3}", 1000 * c + 10 * k
                rows[video] = rows.get(video, -1) + 1
                records.append(UnitRecord(f"{video}_{start}-{start + 15}", MG_KIND, video, f"s-{video}", split, start,
                                          start + 15, mg_label=c, emotion=k % 2, video_name=f"00{k % 3}{split}",
                                          label_row=rows[video]))
    units = unit_columns(records)
    labels = [u.mg_label for u in records]
    rgb_len, pose_len = int(np.prod(rgb_grid)), int(np.prod(pose_grid))
    rgb = {"tokens": [_tokens(rng, protos["tokens"][c], rgb_len, signal) for c in labels],
           "cls": [_tokens(rng, protos["cls"][c], 1, signal) for c in labels]}
    pose = {s: [_tokens(rng, protos[s][c], pose_len, signal) for c in labels] for s in ("joint", "bone")}
    keep = np.arange(len(labels))[drop_pose_units:]
    pose_units = {k: [v[i] for i in keep] for k, v in units.items()}
    pose = {s: [a[i] for i in keep] for s, a in pose.items()}
    manifest = "synthetic-mg"
    return {
        "rgb": _write(root, "rgb", manifest, units, rgb,
                      {"tokens": _spec(rgb_grid, dim), "cls": {"tokens": 1, "dim": dim}}),
        "pose": _write(root, "pose", manifest + ("-partial" if drop_pose_units else ""), pose_units, pose,
                       {s: _spec(pose_grid, dim) for s in ("joint", "bone")}),
    }


def write_emotion(root: Path, videos: tuple[int, int, int] = (32, 12, 16), windows: tuple[int, int] = (3, 8),
                  face_frames: int = 4, face_dim: int = 16, context_dim: int = 16,
                  context_grid: tuple[int, int, int] = (2, 2, 2), signal: float = 0.6,
                  signal_windows: float = 0.5, seed: int = 0) -> dict[str, EntryReader]:
    """'face' (embedding) and 'context' (tokens, cls) window entries for `videos` videos per split,
    each with a random number of windows in `windows`; labels alternate win/lose."""
    rng = np.random.default_rng(seed)
    protos = {s: rng.standard_normal((2, d)) for s, d in
              (("embedding", face_dim), ("tokens", context_dim), ("cls", context_dim))}
    records, carries = [], []
    for split, count in zip(SPLITS, videos):
        for v in range(count):
            video, label = f"{split}-v{v:03d}", v % 2
            n = int(rng.integers(windows[0], windows[1] + 1))
            for w in rng.permutation(n):  # stored out of time order: readers must sort by start
                start = 64 * w
                records.append(UnitRecord(f"{video}_{start}-{start + 63}", WINDOW_KIND, video, f"s{v}", split,
                                          start, start + 63, mg_label=NO_LABEL, emotion=label))
                carries.append(rng.random() < signal_windows)
    units = unit_columns(records)
    labels = [u.emotion for u in records]
    ctx_len = int(np.prod(context_grid))

    def planted(stream: str, length: int) -> list[np.ndarray]:
        return [_tokens(rng, protos[stream][y], length, signal if c else 0.0) for y, c in zip(labels, carries)]

    manifest = "synthetic-emotion"
    return {
        "face": _write(root, "face", manifest, units, {"embedding": planted("embedding", face_frames)},
                       {"embedding": _spec((face_frames,), face_dim)}),
        "context": _write(root, "context", manifest, units,
                          {"tokens": planted("tokens", ctx_len), "cls": planted("cls", 1)},
                          {"tokens": _spec(context_grid, context_dim), "cls": {"tokens": 1, "dim": context_dim}}),
    }
