"""The MiGA 2025 release layout.

    imigue_skeleton_{train,validate,test}/<id>/<id>_openpose.xlsx   (T x 411, no header)
    imigue_skeleton_{train,validate,test}/<id>/<id>_label.csv       (class,start,end)
    <split folder>/<id>/<id>.mp4                                     (any folder under the root)
    train_label.csv, validation_label.csv[, test_label.csv]          (video_id,label)

MiGA names no subjects: its splits are already cross-subject, so each video is its own
subject group and the split comes from the folder.
"""
from __future__ import annotations

from pathlib import Path

from ..manifest import Manifest, Unit, Video, make_unit_id, window_units
from ..video import VideoError, probe
from .labels import read_clip_labels, read_emotion_labels

SPLIT_FOLDERS = {"train": "train", "validate": "val", "val": "val", "test": "test"}
EMOTION_FILES = {"train_label.csv": "train", "validation_label.csv": "val", "test_label.csv": "test"}


def looks_like(root: Path) -> bool:
    return any(root.glob("imigue_skeleton_*/*/*_openpose.xlsx"))


def read(root: Path, window: int) -> Manifest:
    """Read the layout under `root` into a manifest; problems are collected, not raised."""
    manifest = Manifest(root=root, layout="miga2025")
    problems = manifest.problems
    videos_by_id = _index_videos(root, problems)
    emotion: dict[str, int] = {}
    for name in EMOTION_FILES:
        for path in sorted(root.glob(name)) + sorted(root.glob(f"*/{name}")):
            emotion.update(read_emotion_labels(path, problems))

    for folder in sorted(root.glob("imigue_skeleton_*")):
        split = SPLIT_FOLDERS.get(folder.name.removeprefix("imigue_skeleton_"))
        if split is None:
            problems.append(f"{folder}: unknown split folder (expected _train, _validate or _test)")
            continue
        for video_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            _read_video(video_dir, split, videos_by_id, emotion, window, manifest)
    _check_duplicates(manifest)
    return manifest


def _read_video(video_dir: Path, split: str, videos_by_id: dict[str, Path], emotion: dict[str, int],
                window: int, manifest: Manifest) -> None:
    vid = video_dir.name
    problems = manifest.problems
    skeleton = video_dir / f"{vid}_openpose.xlsx"
    labels = video_dir / f"{vid}_label.csv"
    video_path = videos_by_id.get(vid)
    if not skeleton.exists():
        problems.append(f"{skeleton}: skeleton file missing")
    if video_path is None:
        problems.append(f"{video_dir}: video {vid}.mp4 not found under {manifest.root}")
    frames = width = height = 0
    if video_path is not None:
        try:
            info = probe(video_path)
            frames, width, height = info.frames, info.width, info.height
        except VideoError as exc:
            problems.append(str(exc))
            video_path = None
    video = Video(vid, subject=vid, split=split, emotion=emotion.get(vid, -1), video_path=video_path,
                  skeleton_path=skeleton if skeleton.exists() else None,
                  frames=frames, width=width, height=height)
    manifest.videos[vid] = video
    if labels.exists():
        for clip in read_clip_labels(labels, frames or None, problems):
            manifest.units.append(Unit(make_unit_id(vid, clip.start, clip.end), "mg", vid, vid, split,
                                       clip.start, clip.end, clip.mg_label, video.emotion))
    else:
        problems.append(f"{labels}: label file missing")
    manifest.units.extend(window_units(video, frames, window))


def _index_videos(root: Path, problems: list[str]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.mp4")):
        if path.stem in found:
            problems.append(f"{path}: duplicate video id {path.stem} (also {found[path.stem]})")
            continue
        found[path.stem] = path
    return found


def _check_duplicates(manifest: Manifest) -> None:
    seen: set[str] = set()
    unique = []
    for unit in manifest.units:
        if unit.unit_id in seen:
            manifest.problems.append(f"duplicate unit {unit.unit_id} (same video and frame range); "
                                     "kept the first")
            continue
        seen.add(unit.unit_id)
        unique.append(unit)
    manifest.units = unique
