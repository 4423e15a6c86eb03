"""The full iMiGUE release: one table of clips, the videos, and skeletons if present.

    labels.csv        header video_id,class,start_frame,end_frame,win_or_lose,subject_id
                      (at the root or one folder down; one row per MG clip)
    <id>.mp4          anywhere under the root
    skeletons         optional, anywhere under the root, any of: <id>_openpose.xlsx,
                      <id>_light_hand.csv, a folder of OpenPose *_keypoints.json (taken in
                      that order of preference when a video has several)
    train_label.csv / validation_label.csv   optional; emotion otherwise comes from win_or_lose

Subjects are known here, so the split is made cross-subject by `subject_id`: subjects are
ordered by the SHA-256 of `<seed>:<subject>` (seed 0) and the first 60% go to train, the next
20% to val, the rest to test (`common.split_by_subject`). All units of a subject are in one
split; the split does not depend on file order, and a new subject moves no other one.
"""
from __future__ import annotations

from pathlib import Path

from migue.common.splits import SPLITS

from .common import DatasetManifest, ReadOptions, Reader, read_emotion_files, split_by_subject
from .files import Roots, as_roots, video_key, within
from .labels import LabelError, ReleaseRow, parse_clip, read_release_labels

NAME = "imigue"
SPLIT_SEED = 0


LOOKS_FOR = "labels.csv (at a root or one folder down) rows of subjects in the {split} split"


def find_labels(root: Path | Roots) -> list[Path]:
    roots = as_roots(root)
    return [p for top in roots for p in sorted(top.glob("labels.csv")) + sorted(top.glob("*/labels.csv"))
            if within(p, roots)]


def looks_like(root: Path | Roots) -> bool:
    return bool(find_labels(root))


def read(root: Path | Roots, opts: ReadOptions) -> DatasetManifest:
    reader = Reader(root, NAME, opts)
    root = reader.where
    paths = find_labels(reader.roots)
    if not paths:
        reader.problem(f"{root}: no labels.csv (at the root or one folder down)")
        return reader.manifest
    path = paths[0]
    reader.use(path)
    for split in SPLITS:  # labels.csv holds every split (by subject): an empty one is a problem
        reader.source(split, path)
    if len(paths) > 1:
        reader.problem(f"{root}: several labels.csv ({', '.join(str(p) for p in paths)}); read {path}")
    rows = read_release_labels(path, reader.problems)
    by_video: dict[str, list[ReleaseRow]] = {}
    subject: dict[str, tuple[str, int]] = {}  # video -> (subject, row)
    emotion: dict[str, tuple[int, int]] = {}  # video -> (label, row)
    for row in rows:
        where = f"{path}: row {row.row}"
        if row.video_id in subject and subject[row.video_id][0] != row.subject:
            first, first_row = subject[row.video_id]
            reader.problem(f"{where}: video {row.video_id} has subject {row.subject} here but {first} "
                           f"in row {first_row}; the clip is skipped")
            continue
        subject.setdefault(row.video_id, (row.subject, row.row))
        if row.emotion >= 0:
            if row.video_id in emotion and emotion[row.video_id][0] != row.emotion:
                first_label, first_row = emotion[row.video_id]
                reader.problem(f"{where}: win_or_lose of video {row.video_id} disagrees with row "
                               f"{first_row}; kept row {first_row}'s")
            emotion.setdefault(row.video_id, (row.emotion, row.row))
        by_video.setdefault(row.video_id, []).append(row)

    found = reader.found
    from_files = read_emotion_files(reader)
    splits = split_by_subject([s for s, _ in subject.values()], SPLIT_SEED)
    has_skeletons = bool(found.xlsx or found.light_hand or found.json_dirs)
    if not has_skeletons:
        reader.note(f"no skeleton files under {root}: no pose inputs (face crops need them too)")
    for vid, video_rows in by_video.items():
        label = emotion.get(vid, (-1, 0))[0]
        file_label = from_files.get(video_key(vid), -1)
        if label >= 0 and file_label >= 0 and label != file_label:
            reader.problem(f"{path}: row {emotion[vid][1]}: win_or_lose of video {vid} disagrees with "
                           "the emotion label files; kept labels.csv's")
        label = label if label >= 0 else file_label
        video_path = found.videos.get(video_key(vid))
        if video_path is None:
            reader.problem(f"{path}: video {vid}.mp4 (rows {video_rows[0].row}..{video_rows[-1].row}) "
                           f"not found under {root}")
        skeleton = found.skeleton(vid)
        if skeleton is None and has_skeletons:
            reader.problem(f"{path}: no skeleton file for video {vid} under {root}")
        video = reader.add_video(vid, subject[vid][0], splits[subject[vid][0]], label, video_path, skeleton,
                                 where=f"{path}: rows {video_rows[0].row}..{video_rows[-1].row}")
        if video is None:  # rows of a video read before under another spelling of its id
            continue
        reader.labelled(video)  # its rows in labels.csv are its segments
        n_frames, source = reader.extent(video)
        for k, row in enumerate(video_rows):
            where = f"{path}: row {row.row}"
            try:
                cls, start, end = parse_clip(*row.clip, n_frames, source)
            except LabelError as exc:
                reader.problem(f"{where}: {exc}")
                continue
            reader.add_clip(video, cls, start, end, where, label_row=k)
        reader.add_windows(video)
    unused = sorted(set(found.videos) - {video_key(v) for v in by_video})
    if unused:
        reader.note(f"{len(unused)} video file(s) under {root} have no rows in {path.name} and are not "
                    f"read: {', '.join(found.videos[k].name for k in unused[:10])}"
                    + (" ..." if len(unused) > 10 else ""))
    return reader.manifest
