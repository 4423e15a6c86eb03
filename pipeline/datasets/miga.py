"""The MiGA challenge folder layouts, one reader for every skeleton format they come in.

    imigue_skeleton_{train,validate,test}/<id>/<skeleton>          (see the layout modules)
    imigue_skeleton_{train,validate,test}/<id>/<id>_label.csv      (class,start,end; no header)
    <id>.mp4 anywhere under the root (MiGA: imigue_rgb_<split>/<id>/<id>.mp4), optional
    train_label.csv, validation_label.csv[, test_label.csv]        (video_id,label)

The `imigue_skeleton_*` folders may sit at any depth below the root. MiGA names no subjects:
its splits are already cross-subject, so each video is its own subject group and the split
comes from the folder. The RGB videos are a separate download: with none under the root the
data is pose-only (a note, not a problem); with some, each missing one is a problem.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .common import DatasetManifest, ReadOptions, Reader, read_emotion_files, split_folders, split_of_folder
from .files import scan, video_key
from .labels import read_clip_labels

SkeletonFinder = Callable[[Path, str], Path | None]


def named_file(template: str) -> SkeletonFinder:
    """A finder for the skeleton file `template.format(id=...)` in a video's folder."""

    def find(video_dir: Path, vid: str) -> Path | None:
        path = video_dir / template.format(id=vid)
        return path if path.exists() else None

    return find


def looks_like(root: Path, pattern: str) -> bool:
    """Any `imigue_skeleton_*/<id>/<pattern>` at any depth below the root."""
    return any(any(folder.glob(f"*/{pattern}")) for folder in split_folders(root))


def read_miga(root: Path, layout: str, opts: ReadOptions, find_skeleton: SkeletonFinder,
              expected: str) -> DatasetManifest:
    """Read the MiGA folders under `root`; `find_skeleton(video_dir, id)` locates a video's
    skeleton, `expected` names it in the 'missing' problem."""
    reader = Reader(root, layout, opts)
    found = scan(root)
    for text in found.problems:
        reader.problem(text)
    emotion = read_emotion_files(root, reader)
    if not found.videos:
        reader.note(f"no video files (*.mp4) under {root}: pose units only (no rgb, context or face)")
    for folder in split_folders(root):
        split = split_of_folder(folder)
        if split is None:
            reader.problem(f"{folder}: unknown split folder (expected imigue_skeleton_train, "
                           "_validate or _test)")
            continue
        for video_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            _read_video(reader, video_dir, split, found.videos, emotion, find_skeleton, expected)
    return reader.manifest


def _read_video(reader: Reader, video_dir: Path, split: str, videos: dict[str, Path],
                emotion: dict[str, int], find_skeleton: SkeletonFinder, expected: str) -> None:
    vid = video_dir.name
    skeleton = find_skeleton(video_dir, vid)
    if skeleton is None:
        reader.problem(f"{video_dir}: skeleton file missing (expected {expected.format(id=vid)})")
    video_path = videos.get(video_key(vid))
    if video_path is None and videos:
        reader.problem(f"{video_dir}: video {vid}.mp4 not found under {reader.manifest.root}")
    video = reader.add_video(vid, vid, split, emotion.get(video_key(vid), -1), video_path, skeleton)
    labels = video_dir / f"{vid}_label.csv"
    if labels.exists():
        n_frames, source = reader.extent(video)
        for clip in read_clip_labels(labels, n_frames, reader.problems, source):
            reader.add_clip(video, clip.mg_label, clip.start, clip.end, f"{labels}: row {clip.row}")
    elif split == "test":
        reader.note("test videos without <id>_label.csv (test labels are not released): "
                    "no MG clips for them")
    else:
        reader.problem(f"{labels}: label file missing")
    reader.add_windows(video)
