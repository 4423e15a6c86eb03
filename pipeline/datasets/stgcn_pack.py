"""ST-GCN baseline pack I/O: the `.npy` clips, the label pickle, and each clip's frames.

    <part>_data.npy    float (N, C=3, T=90, V=22, M=1): x, y, confidence of 22 joints
    <part>_label.pkl   pickled (names, labels): names '<video id>_<k>' (clip k of the video in
                       its label file's row order), labels class indices 0..31

The 22 joints are the light-hand subset in light-hand order, named in `PACK_JOINTS` (Nose,
Neck, both shoulders, elbows and wrists, both eyes and ears, 5 right then 5 left fingertips);
each is placed at its OpenPose index by name. The readers take the joint names as an argument
(default `PACK_JOINTS`). The baseline kept the last 90 frames of longer clips and zero-padded
shorter ones at the end.

Frame ranges: the pack does not keep them. When the MiGA `<id>_label.csv` files (or a
`labels.csv`) are under the pack's folder, clip k is matched to its row (k is 0-based when any
name has k = 0, else 1-based) and checked against its class; the clips then get their true
frame ranges. Without them a video's clips are laid end to end on a virtual timeline (clip k at
frames k*T .. k*T + n - 1, n = its frames up to the last non-zero one) and named `<id>:clip<k>`.

The label pickle is read by a restricted unpickler that builds only lists, tuples, strings,
numbers and numpy arrays; anything else is refused with a `PackError`.

Both the skeleton reader (`skeleton.read_skeleton` of a `<pack>#<video id>` reference) and the
`stgcn` layout import this module; it imports neither.
"""
from __future__ import annotations

import csv
import io
import pickle
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from migue.cache.files import fingerprint_bytes, require_regular_file
from migue.common.splits import split_named

from .classes import N_MG_CLASSES
from .errors import SkeletonError
from .files import Roots, as_roots, scan, video_key, within
from .labels import LabelError, parse_clip, parse_clip_row, read_release_labels
from .openpose import KEYPOINT_INDEX, N_KEYPOINTS

PACK_FRAMES = 90
PACK_REF = "#"  # `<part>_data.npy#<video id>`: one video's clips in an ST-GCN pack
_TIPS = ("ThumbTip", "IndexTip", "MiddleTip", "RingTip", "PinkyTip")
# The pack's 22 joints in their order (OpenPose names; BODY_25's wrists, as the light-hand rows).
PACK_JOINTS: tuple[str, ...] = (
    ("Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "REye", "LEye", "REar", "LEar")
    + tuple("R" + t for t in _TIPS) + tuple("L" + t for t in _TIPS))
CLIP_NAME = re.compile(r"^(?P<video>.+)_(?P<k>\d+)$")


class PackError(SkeletonError):
    """An ST-GCN pack (or its label pickle) that cannot be used; the message names the file."""


# ---------------------------------------------------------------- the label pickle

_ALLOWED_GLOBALS = {
    (module, name)
    for core in ("numpy.core", "numpy._core")
    for module, name in ((f"{core}.multiarray", "_reconstruct"), (f"{core}.multiarray", "scalar"),
                         (f"{core}.numeric", "_frombuffer"))
} | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
     ("builtins", "list"), ("builtins", "tuple"), ("builtins", "str"), ("builtins", "int")}


class _SafeUnpickler(pickle.Unpickler):
    """Builds lists, tuples, strings, numbers and numpy arrays; refuses every other global."""

    def __init__(self, file: io.BufferedIOBase, path: Path) -> None:
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise PackError(f"{self.path}: refused to unpickle {module}.{name} (a label pickle may hold "
                        "only lists, tuples, strings, integers and numpy arrays)")

    def persistent_load(self, pid: object) -> object:
        raise PackError(f"{self.path}: refused a persistent reference in the pickle")


def load_label_pickle(path: Path) -> tuple[list[object], list[object]]:
    """`<part>_label.pkl` -> (names, labels), read safely; structure errors are PackErrors."""
    try:
        require_regular_file(path)
        with open(path, "rb") as f:
            obj = _SafeUnpickler(f, path).load()
    except PackError:
        raise
    except Exception as exc:  # a malformed pickle can fail in many ways: all are this file's
        raise PackError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, (tuple, list)) or len(obj) != 2:
        raise PackError(f"{path}: expected a pickled (names, labels) pair, got {type(obj).__name__}"
                        + (f" of {len(obj)}" if isinstance(obj, (tuple, list)) else ""))
    names, labels = obj
    for what, seq in (("names", names), ("labels", labels)):
        if not isinstance(seq, (list, tuple, np.ndarray)) or (isinstance(seq, np.ndarray) and seq.ndim != 1):
            raise PackError(f"{path}: {what} must be a list, got {type(seq).__name__}")
    if len(names) != len(labels):
        raise PackError(f"{path}: {len(names)} names but {len(labels)} labels")
    return list(names), list(labels)


# ---------------------------------------------------------------- the pack index

@dataclass(frozen=True)
class PackClip:
    item: int  # index in the pack
    name: str
    video_id: str
    k: int
    label: int  # class index 0..31
    start: int
    end: int  # inclusive
    unit_id: str | None  # None: make_unit_id(video, start, end)


@dataclass
class Pack:
    data_path: Path
    label_path: Path
    split: str | None
    frames: int = PACK_FRAMES
    base: int = 0  # k of the first clip in the names: 0 or 1
    clips: dict[str, list[PackClip]] = field(default_factory=dict)  # video -> clips
    problems: list[str] = field(default_factory=list)


def find_packs(root: Path | Roots) -> list[Path]:
    """The `<part>_data.npy` files at each root or one folder down."""
    roots = as_roots(root)
    return [p for top in roots for p in sorted(top.glob("*_data.npy")) + sorted(top.glob("*/*_data.npy"))
            if within(p, roots)]


DATA_SUFFIX, LABEL_SUFFIX = "_data.npy", "_label.pkl"


def pack_part(data_path: Path) -> str:
    """The `<part>` of `<part>_data.npy` (train, val, validate, test, ...)."""
    return data_path.name[: -len(DATA_SUFFIX)]


def pack_split(data_path: Path) -> str | None:
    """The split a pack's part names; None for an unknown part."""
    return split_named(pack_part(data_path))


def label_path_of(data_path: Path) -> Path:
    """The `<part>_label.pkl` beside `<part>_data.npy`."""
    return data_path.parent / f"{pack_part(data_path)}{LABEL_SUFFIX}"


def pack_unit_id(video_id: str, k: int) -> str:
    return f"{video_id}:clip{k}"


def _open_data(path: Path, n_joints: int) -> np.ndarray:
    try:
        require_regular_file(path)
        data = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # bad magic, bad header, pickled object arrays, short file
        raise PackError(f"{path}: not a readable .npy array ({type(exc).__name__}: {exc})") from None
    if data.ndim != 5 or data.shape[1] != 3 or data.shape[3] != n_joints or data.shape[4] < 1:
        raise PackError(f"{path}: shape {data.shape}, expected (N, 3, T, {n_joints}, M) "
                        "(clips, x/y/confidence, frames, joints, persons)")
    if not np.issubdtype(data.dtype, np.number):
        raise PackError(f"{path}: dtype {data.dtype} is not numeric")
    return data


def index_pack(data_path: Path, joints: Sequence[str] = PACK_JOINTS) -> Pack:
    """Names, labels and frame placement of every clip in a pack of `joints` (kept per process)."""
    label_path = label_path_of(data_path)
    stamp = tuple((p.stat().st_mtime_ns, p.stat().st_ctime_ns, p.stat().st_ino, p.stat().st_size)
                  if p.exists() else None for p in (data_path, label_path))
    return _index_pack(str(data_path), stamp, len(joints))


@lru_cache(maxsize=16)
def _index_pack(data_str: str, stamp: object, n_joints: int) -> Pack:
    data_path = Path(data_str)
    label_path = label_path_of(data_path)
    pack = Pack(data_path, label_path, pack_split(data_path))
    if pack.split is None:
        raise PackError(f"{data_path}: unknown part {pack_part(data_path)!r} (expected train, val or test)")
    if not label_path.exists():
        raise PackError(f"{label_path}: missing (the labels of {data_path.name})")
    data = _open_data(data_path, n_joints)
    names, labels = load_label_pickle(label_path)
    if len(names) != data.shape[0]:
        raise PackError(f"{label_path}: {len(names)} names but {data_path.name} has {data.shape[0]} clips")
    pack.frames = data.shape[2]
    parsed: list[tuple[int, str, str, int, int]] = []
    seen: dict[str, int] = {}
    for item, (name, label) in enumerate(zip(names, labels)):
        where = f"{label_path}: item {item}"
        match = CLIP_NAME.match(name) if isinstance(name, str) else None
        if match is None:
            pack.problems.append(f"{where}: name {name!r} is not '<video id>_<k>'")
            continue
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label < N_MG_CLASSES:
            pack.problems.append(f"{where} ({name!r}): label {label!r} is not a class index 0..{N_MG_CLASSES - 1}")
            continue
        if int(match["k"]) > data.shape[0]:  # clip k of a video: k cannot exceed the pack's clips
            pack.problems.append(f"{where}: name {name!r}: clip number {match['k']} is past the "
                                 f"{data.shape[0]} clips of {data_path.name}")
            continue
        if name in seen:
            pack.problems.append(f"{where}: duplicate name {name!r} (also item {seen[name]}); kept the first")
            continue
        seen[name] = item
        parsed.append((item, str(name), match["video"], int(match["k"]), int(label)))
    base = 0 if any(k == 0 for *_, k, _ in parsed) else 1
    pack.base = base
    ranges = _label_ranges(data_path.parent, {vid for _, _, vid, _, _ in parsed})
    by_video: dict[str, list[tuple[int, str, str, int, int]]] = {}
    for entry in parsed:
        by_video.setdefault(entry[2], []).append(entry)
    for vid, entries in by_video.items():
        entries.sort(key=lambda e: e[3])
        pack.clips[vid] = _place(pack, data, vid, entries, ranges.get(video_key(vid)), base)
    return pack


def _place(pack: Pack, data: np.ndarray, vid: str, entries: list[tuple[int, str, str, int, int]],
           rows: tuple[str, list[tuple[int, int, int] | None]] | None, base: int) -> list[PackClip]:
    """Clips of one video at their true frames (label rows known and agreeing), else virtual."""
    if rows is not None:
        source, spans = rows
        clips, ok = [], True
        for item, name, _, k, label in entries:
            i = k - base
            span = spans[i] if 0 <= i < len(spans) else None
            if span is None or span[0] != label:
                got = "no usable row" if span is None else f"class index {span[0]}"
                pack.problems.append(f"{pack.label_path}: item {item} ({name!r}, class index {label}): "
                                     f"row {i + 1} of {source} has {got}; the video's clips are "
                                     "placed on a virtual timeline")
                ok = False
                break
            clips.append(PackClip(item, name, vid, k, label, span[1], span[2], None))
        if ok:
            return clips
    clips = []
    for item, name, _, k, label in entries:
        frames = np.asarray(data[item]).reshape(3, pack.frames, -1)
        used = np.flatnonzero(np.abs(frames).sum(axis=(0, 2)) > 0)
        n = int(used[-1]) + 1 if len(used) else pack.frames
        start = k * pack.frames
        clips.append(PackClip(item, name, vid, k, label, start, start + n - 1, pack_unit_id(vid, k)))
    return clips


def _label_ranges(folder: Path, video_ids: set[str]) -> dict[str, tuple[str, list[tuple[int, int, int] | None]]]:
    """Per video key: (file, its clip rows in order as (class index, start, end) or None when
    a row is unusable), from `<id>_label.csv` files or a `labels.csv` under `folder`."""
    wanted = {video_key(v) for v in video_ids}
    out: dict[str, tuple[str, list[tuple[int, int, int] | None]]] = {}
    found = scan(folder)
    for key, path in found.label_files.items():
        if key not in wanted:
            continue
        try:
            with open(path, newline="") as f:
                rows = [r for r in csv.reader(f) if any(c.strip() for c in r)]
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
        spans: list[tuple[int, int, int] | None] = []
        for row in rows:
            try:
                spans.append(parse_clip_row(row, None))
            except LabelError:
                spans.append(None)
        out[key] = (str(path), spans)
    releases = [p for p in sorted(folder.glob("labels.csv")) + sorted(folder.glob("*/labels.csv"))
                if within(p, (folder,))]  # not in a folder linked in from elsewhere
    if releases:
        release = str(releases[0])
        for row in read_release_labels(releases[0], []):
            key = video_key(row.video_id)
            if key not in wanted or (key in out and out[key][0] != release):
                continue
            try:
                span: tuple[int, int, int] | None = parse_clip(*row.clip, None)
            except LabelError:
                span = None
            out.setdefault(key, (release, []))[1].append(span)
    return out


def video_keypoints(data_path: Path, video_id: str, joints: Sequence[str] = PACK_JOINTS) -> np.ndarray:
    """(T, 137, 3) of one video's clips from a pack of `joints`, each clip's kept frames at its place."""
    points = [KEYPOINT_INDEX[joint] for joint in joints]
    pack = index_pack(data_path, joints)
    clips = pack.clips.get(video_id)
    if not clips:
        raise PackError(f"{data_path}: no clips of video {video_id}")
    data = _open_data(data_path, len(joints))
    out = np.zeros((max(c.end for c in clips) + 1, N_KEYPOINTS, 3), dtype=np.float32)
    for clip in clips:
        x = np.asarray(data[clip.item, :, :, :, 0], dtype=np.float64)  # (3, T, 22)
        if not np.isfinite(x).all():
            c, t, v = np.argwhere(~np.isfinite(x))[0]
            raise PackError(f"{data_path}: item {clip.item} ({clip.name!r}), frame {t}, joint "
                            f"{joints[v]}: {'xyc'[c]} is {x[c, t, v]} (not finite)")
        n = min(clip.end - clip.start + 1, pack.frames)
        placed = out[clip.end - n + 1:clip.end + 1]
        placed[:, points] = x[:, :n].transpose(1, 2, 0)
    out[out[..., 2] <= 0] = 0.0
    return out


def pack_fingerprint(data_path: Path, video_id: str, joints: Sequence[str] = PACK_JOINTS) -> str:
    """Fingerprint of exactly what a video's skeleton is built from in a pack: its clips' rows
    of `<part>_data.npy` (bytes, dtype, shape), their names, labels and frame placement."""
    pack = index_pack(data_path, joints)
    clips = pack.clips.get(video_id)
    if not clips:
        raise PackError(f"{data_path}: no clips of video {video_id}")
    data = _open_data(data_path, len(joints))
    parts: list[bytes | str] = [f"{data.dtype.str} {data.shape[1:]}"]
    for clip in clips:
        parts.append(f"{clip.item} {clip.name} {clip.label} {clip.start} {clip.end}")
        parts.append(np.ascontiguousarray(data[clip.item]).tobytes())
    return fingerprint_bytes(*parts)
