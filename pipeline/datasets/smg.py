"""The SMG release (Spontaneous Micro-Gesture, Kinect v2 skeletons; MiGA Track 2's second dataset).

    <id>/<id>_skeleton.csv     no header; per frame 25 Kinect joints x 11 values (3 world position,
                               4 orientation, 2 depth pixel, 2 colour pixel): see `kinect.py`
    <id>/<id>_finelabels.csv   no header; rows class,start,end: class 1..17, frames 1-based, inclusive
    <id>/<id>_data.csv         no header; one row numFrames,fps,maxDepth

The `<id>/` folders sit at the root or below (`smg_skeleton_<split>/<id>/` as MiGA ships them, at
any depth down to `MAX_DEPTH`). Internally (units, segments) frames are 0-based and inclusive:
the 1-based row `3,10,20` is the segment of class index 2, frames 9..19. Frames outside labelled
spans are background. Each sequence is one participant: its own subject; no emotion labels.

Split: in `smg_skeleton_<split>` folders, the folder's. Otherwise the organisers' starter-kit rule:
sequences sorted by id, [0:35] train, [35:] test (the release's 40 sequences give 35 / 5). A
smaller release (a synthetic sample) keeps that proportion: the first floor(7/8 of N) train (at
least one sequence in each split when there are two or more). No validation split is carved: the
kit has none (training keeps its last epoch).

Bad input never raises: every bad row (class outside 1..17, start after end, end past numFrames,
a cell that is not an integer) and every missing or broken file is a problem naming the file
(and row); the row is left out, and every other row and sequence is read.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

from migue.cache.files import require_regular_file
from migue.cache.units import DENSE_KIND
from migue.common.splits import split_named

from .bounds import MAX_FRAMES
from .common import DatasetManifest, ReadOptions, Reader
from .files import Roots, as_roots, followed
from .kinect import COLOUR_SIZE, SKELETON_SUFFIX
from .labels import LabelError, parse_int

NAME = "smg"
N_CLASSES = 17
# The release numbers its classes 1..17 and names none in its files.
CLASS_NAMES: tuple[str, ...] = tuple(f"SMG class {k}" for k in range(1, N_CLASSES + 1))
JOINT_LAYOUT = "kinect25"
LABELS_SUFFIX, DATA_SUFFIX = "_finelabels.csv", "_data.csv"
KIT_TRAIN = 35  # the starter kit: sorted sequences [0:35] train, [35:] test
KIT_TOTAL = 40  # sequences in the release
MAX_DEPTH = 4  # folders below a root searched for <id>/ sequence folders
SPLIT_PREFIX = "smg_skeleton_"
# MiGA uses SMG for its online track (Track 2): `migue extract` covers its dense windows unless told
# otherwise (`--units mg`: its gesture clips)
DEFAULT_UNITS = (DENSE_KIND, "SMG is MiGA's online-recognition release")
LOOKS_FOR = "<id>/<id>_skeleton.csv sequence folders (split by the starter kit's rule, or smg_skeleton_{folder}/)"


def sequence_folders(root: Path | Roots) -> list[Path]:
    """Folders `<id>/` holding `<id>_skeleton.csv`, `<id>_finelabels.csv` or `<id>_data.csv`, at
    most `MAX_DEPTH` below a root (folder listings only), sorted by id then path."""
    roots = as_roots(root)
    found = []
    for top in roots:
        base = len(top.parts)
        for dirpath, dirnames, filenames in os.walk(top):
            folder = Path(dirpath)
            dirnames.sort()
            if len(folder.parts) - base >= MAX_DEPTH:
                dirnames[:] = []
            names = set(filenames)
            if any(folder.name + suffix in names for suffix in (SKELETON_SUFFIX, LABELS_SUFFIX, DATA_SUFFIX)):
                if followed(folder, roots):
                    found.append(folder)
                dirnames[:] = []  # a sequence folder holds no other sequence
    return sorted(found, key=lambda p: (p.name, str(p)))


def looks_like(root: Path | Roots) -> bool:
    """Any `<id>/<id>_skeleton.csv` down to `MAX_DEPTH` below a root."""
    return any((folder / f"{folder.name}{SKELETON_SUFFIX}").exists() for folder in sequence_folders(root))


def kit_split(ids: list[str]) -> dict[str, str]:
    """The starter kit's split of sorted sequence ids: [0:35] train, [35:] test; with fewer than
    the release's 40, the same 7/8 share train (at least one each when there are two or more)."""
    order = sorted(ids)
    n = len(order)
    n_train = KIT_TRAIN if n >= KIT_TOTAL else n * KIT_TRAIN // KIT_TOTAL
    if n >= 2:
        n_train = min(max(n_train, 1), n - 1)
    return {sid: "train" if i < n_train else "test" for i, sid in enumerate(order)}


def folder_split(folder: Path) -> str | None:
    """The split of a sequence in a `smg_skeleton_<split>/` folder, None when not in one."""
    parent = folder.parent.name
    return split_named(parent[len(SPLIT_PREFIX):]) if parent.startswith(SPLIT_PREFIX) else None


def read(root: Path | Roots, opts: ReadOptions) -> DatasetManifest:
    """Read every sequence under the roots; problems are collected, not raised."""
    reader = Reader(root, NAME, opts)
    reader.manifest.class_names = CLASS_NAMES
    reader.manifest.joint_layout = JOINT_LAYOUT
    reader.found  # the walk that accounts for files no reader used (`migue data check`)
    folders = sequence_folders(reader.roots)
    if not folders:
        reader.problem(f"{reader.where}: no SMG sequence folders (<id>/<id>_skeleton.csv)")
        return reader.manifest
    kit = kit_split([f.name for f in folders if folder_split(f) is None])
    for folder in folders:
        split = folder_split(folder) or kit[folder.name]
        reader.source(split, folder.parent)
        try:
            _read_sequence(reader, folder, split)
        except OSError as exc:  # one unreadable sequence never loses the others
            reader.problem(f"{folder}: cannot read ({exc}); the sequence is left out")
    return reader.manifest


def _read_sequence(reader: Reader, folder: Path, split: str) -> None:
    sid = folder.name
    skeleton, labels, data = (folder / f"{sid}{suffix}" for suffix in (SKELETON_SUFFIX, LABELS_SUFFIX, DATA_SUFFIX))
    if not skeleton.exists():
        reader.problem(f"{skeleton}: skeleton file missing (its gestures will fail pose extraction)")
    declared = 0
    if data.exists():
        reader.use(data)
        declared = read_frame_count(data, reader.problems)
    else:
        reader.problem(f"{data}: file missing (numFrames,fps,maxDepth): frames counted from the skeleton")
    video = reader.add_video(sid, sid, split, -1, None, skeleton if skeleton.exists() else None, name=sid,
                             where=str(folder), declared=declared, size=COLOUR_SIZE)
    if video is None:
        return
    if not labels.exists():
        if split == "test":
            reader.note(f"test sequences without <id>{LABELS_SUFFIX} (labels not released): no gestures for them")
        else:
            reader.problem(f"{labels}: label file missing")
        return
    reader.use(labels)
    reader.labelled(video)
    for k, (row, cls, start, end) in enumerate(read_fine_labels(labels, video.frames or None, reader.problems)):
        reader.add_clip(video, cls, start, end, f"{labels}: row {row}", label_row=k)


def read_frame_count(path: Path, problems: list[str]) -> int:
    """numFrames of `<id>_data.csv` (one row numFrames,fps,maxDepth); 0 and a problem when bad."""
    rows = _rows(path, problems)
    if rows is None:
        return 0
    if len(rows) != 1:
        problems.append(f"{path}: {len(rows)} rows, expected one row numFrames,fps,maxDepth")
        return 0
    row_no, cells = rows[0]
    try:
        if len(cells) != 3:
            raise LabelError(f"has {len(cells)} columns, expected 3 (numFrames,fps,maxDepth)")
        frames = parse_int(cells[0], "numFrames")
        fps = parse_int(cells[1], "fps")
        parse_int(cells[2], "maxDepth")
        if frames < 1 or fps < 1:
            raise LabelError(f"numFrames {frames} and fps {fps} must be at least 1")
    except LabelError as exc:
        problems.append(f"{path}: row {row_no}: {exc}")
        return 0
    return frames


def read_fine_labels(path: Path, frames: int | None, problems: list[str]) -> list[tuple[int, int, int, int]]:
    """`<id>_finelabels.csv` rows class,start,end (class 1..17, frames 1-based and inclusive) as
    (row, class index 0..16, start, end) with frames 0-based and inclusive. `frames`: the
    sequence's frame count, when known (an end past it is a problem). Bad rows are problems
    naming file and row, and are left out."""
    out = []
    for row_no, cells in _rows(path, problems) or []:
        try:
            out.append((row_no, *parse_fine_label(cells, frames)))
        except LabelError as exc:
            problems.append(f"{path}: row {row_no}: {exc}")
    return out


def parse_fine_label(cells: list[str], frames: int | None) -> tuple[int, int, int]:
    """One row class,start,end (1-based) -> (class index, start, end), 0-based inclusive."""
    if len(cells) != 3:
        raise LabelError(f"has {len(cells)} columns, expected 3 (class,start,end)")
    cls, start, end = parse_int(cells[0], "class"), parse_int(cells[1], "start frame"), parse_int(cells[2], "end frame")
    if not 1 <= cls <= N_CLASSES:
        raise LabelError(f"class {cls} is not in 1..{N_CLASSES}")
    if start < 1:
        raise LabelError(f"start frame {start} is before the first frame (frames are 1-based)")
    if start > end:
        raise LabelError(f"start frame {start} is after end frame {end}")
    if frames is not None and end > frames:
        raise LabelError(f"end frame {end} is past numFrames {frames} (frames are 1-based)")
    if end > MAX_FRAMES:  # the count is not known: bound it by what any sequence may have
        raise LabelError(f"end frame {end} is past the last frame any sequence may have ({MAX_FRAMES})")
    return cls - 1, start - 1, end - 1


def _rows(path: Path, problems: list[str]) -> list[tuple[int, list[str]]] | None:
    """(1-based row, cells without trailing empties) of the non-blank rows; None and a problem
    when the file cannot be read."""
    try:
        require_regular_file(path)
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        problems.append(f"{path}: cannot read ({exc})")
        return None
    out = []
    for row_no, row in enumerate(rows, start=1):
        cells = list(row)
        while cells and not cells[-1].strip():
            cells.pop()
        if cells:
            out.append((row_no, cells))
    return out
