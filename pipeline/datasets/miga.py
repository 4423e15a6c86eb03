"""The MiGA challenge folder layouts, one reader for every skeleton format they come in.

    imigue_skeleton_{train,validate,test}/<id>/<skeleton>          (see the layout modules)
    imigue_skeleton_{train,validate,test}/<id>/<id>_label.csv      (class,start,end; no header)
    <id>.mp4 anywhere under the root (the 2025 release: imigue_rgb_phase1/train_data/<id>/<id>.mp4,
    imigue_rgb_phase2/<id>/<id>.mp4), optional
    train_label.csv, validation_label.csv[, test_label.csv]        (video_id,label), any depth

The `imigue_skeleton_*` folders may sit at any depth below the root, and the root may be
several folders read as one dataset (phase 1 and phase 2, skeletons and RGB unpacked apart).
Ids are matched with or without leading zeros; the skeleton folder's spelling is kept as the
video's release name. Test label files as released may hold `start,end` rows or a placeholder
class: those clips are unlabelled (a note says which form was seen). MiGA names no subjects:
its splits are already cross-subject, so each video is its own subject group and the split
comes from the folder. The RGB videos are a separate download: with none under the root the
data is pose-only (a note, not a problem); with some, each missing one is a problem.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .common import DatasetManifest, ReadOptions, Reader, read_emotion_files, split_folders, split_of_folder
from .files import SHOWN_UNUSED, Roots, followed, video_key
from .labels import read_clip_labels

SkeletonFinder = Callable[[Path, str], Path | None]


def named_file(template: str) -> SkeletonFinder:
    """A finder for the skeleton file `template.format(id=...)` in a video's folder."""

    def find(video_dir: Path, vid: str) -> Path | None:
        path = video_dir / template.format(id=vid)
        return path if path.exists() else None

    return find


def looks_like(root: Path | Roots, pattern: str) -> bool:
    """Any `imigue_skeleton_*/<id>/<pattern>` at any depth below the roots."""
    return any(any(folder.glob(f"*/{pattern}")) for folder in split_folders(root))


LOOKS_FOR = "imigue_skeleton_{folder}/<id>/ folders (at any depth)"


def read_miga(root: Path | Roots, layout: str, opts: ReadOptions, find_skeleton: SkeletonFinder,
              expected: str) -> DatasetManifest:
    """Read the MiGA folders under the roots; `find_skeleton(video_dir, id)` locates a video's
    skeleton, `expected` names it in the 'missing' problem."""
    reader = Reader(root, layout, opts)
    found = reader.found
    emotion = read_emotion_files(reader)
    if not found.videos:
        reader.note(f"no video files (*.mp4) under {reader.where}: pose units only (no rgb, context or face)")
    unlabelled: dict[str, list[str]] = {}  # form of unlabelled test rows -> label files
    for folder in split_folders(reader.roots):
        split = split_of_folder(folder)
        if split is None:
            reader.problem(f"{folder}: unknown split folder (expected imigue_skeleton_train, "
                           "_validate or _test)")
            continue
        reader.source(split, folder)
        video_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and followed(p, reader.roots))
        if not video_dirs:
            reader.problem(f"{folder}: no video folders (<id>/) in this {split} split folder")
        for video_dir in video_dirs:
            _read_video(reader, video_dir, split, emotion, find_skeleton, expected, unlabelled)
    for form, files in unlabelled.items():
        reader.note(f"{len(files)} test label file(s) hold clips without a class ({form}, e.g. "
                    f"{files[0]}): read as unlabelled MG clips, predicted but not scored")
    _unmatched_videos(reader)
    return reader.manifest


def _unmatched_videos(reader: Reader) -> None:
    """Video files whose id has no skeleton folder: a problem (they would be silently unused)."""
    known = {video_key(v) for v in reader.manifest.videos}
    lost = [path for key, path in reader.found.videos.items() if key not in known]
    if lost:
        shown = ", ".join(str(p) for p in lost[:SHOWN_UNUSED]) + (" ..." if len(lost) > SHOWN_UNUSED else "")
        reader.problem(f"{len(lost)} video file(s) match no skeleton folder: the reader looked for "
                       f"imigue_skeleton_<split>/<id>/ at any depth under {reader.where} ({shown})")


def _read_video(reader: Reader, video_dir: Path, split: str, emotion: dict[str, int],
                find_skeleton: SkeletonFinder, expected: str, unlabelled: dict[str, list[str]]) -> None:
    vid = video_dir.name
    videos = reader.found.videos
    skeleton = find_skeleton(video_dir, vid)
    if skeleton is None:
        reader.problem(f"{video_dir}: skeleton file missing (expected {expected.format(id=vid)})")
    video_path = videos.get(video_key(vid))
    if video_path is None and videos:
        reader.problem(f"{video_dir}: video {vid}.mp4 not found under {reader.where}")
    video = reader.add_video(vid, vid, split, emotion.get(video_key(vid), -1), video_path, skeleton, name=vid,
                             where=str(video_dir))
    if video is None:  # another folder holds this video (same id, or with other leading zeros)
        return
    labels = video_dir / f"{vid}_label.csv"
    if labels.exists():
        reader.use(labels)
        reader.labelled(video)  # its label rows are its segments (MiGA Track 2's long sequences)
        n_frames, source = reader.extent(video)
        for clip in read_clip_labels(labels, n_frames, reader.problems, source, unlabelled=split == "test"):
            if clip.form:
                files = unlabelled.setdefault(clip.form, [])
                if not files or files[-1] != str(labels):
                    files.append(str(labels))
            reader.add_clip(video, clip.mg_label, clip.start, clip.end, f"{labels}: row {clip.row}",
                            label_row=clip.index)
    elif split == "test":
        reader.note("test videos without <id>_label.csv (test labels are not released): "
                    "no MG clips for them")
    else:
        reader.problem(f"{labels}: label file missing")
    reader.add_windows(video)
