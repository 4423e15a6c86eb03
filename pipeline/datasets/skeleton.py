"""Reading skeletons of every release format into (T, 137, 3) OpenPose arrays, parsed once and
kept by content hash.

Formats (all give float32 (T, 137, 3) in the keypoint order of `openpose.py`; x, y in the
file's own units (pixels); confidence 0 = missing, with x = y = 0):

* MiGA 2025 `<id>_openpose.xlsx`: no header, T rows x 411 values (`read_openpose_xlsx`).
* MiGA 2023/24 `<id>_light_hand.csv`: no header, T rows x 106 values: the frame index, then
  the 25 BODY_25 joints, 5 right-hand then 5 left-hand fingertips (thumb to pinky), each
  x, y, c (`read_light_hand_csv`). Rows are frames in row order, as the challenge's own
  reader takes them; the index column must be a number but does not move rows. Points the
  file does not have are missing.
* OpenPose's own output: a folder of `<anything>_<frame>_keypoints.json`, one per frame
  (`read_openpose_json_dir`). The most confident person (largest summed BODY_25 confidence,
  the first on ties) is taken; a frame without people, or a frame number without a file,
  is a missing frame (all zero).
* ST-GCN baseline packs: a reference `<part>_data.npy#<video id>` (see `datasets/stgcn.py`).
* SMG's Kinect v2 `<id>_skeleton.csv` (see `kinect.py`): (T, 25, 3) world positions in metres,
  the Kinect SDK's joint order, not OpenPose's: the `kinect25` joint layout reads them.

Every malformed input raises `SkeletonError` naming the file, and the row and column where
there is one. An empty table is real input (two videos of the release have one): it reads
to (0, 137, 3); `load_skeleton`, the extraction path, refuses it with 'no skeleton frames'.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
from pathlib import Path

import numpy as np

from migue.cache.atomic import atomic_write_bytes
from migue.cache.files import FingerprintMemo, NotARegularFileError, memo_for, require_regular_file

from .errors import SkeletonError
from .bounds import MAX_FRAMES, MAX_SHEET_COLUMNS
from .files import JSON_FRAME
from .kinect import KINECT_COLUMNS, KINECT_INDEX, N_KINECT, SKELETON_SUFFIX, VALUES_PER_JOINT, WORLD
from .openpose import BODY_SLICE, FINGERTIPS, KEYPOINT_INDEX, N_COLUMNS, N_KEYPOINTS
from .stgcn_pack import PACK_REF, pack_fingerprint, video_keypoints
from .sheet_bounds import SheetBoundsError, check_workbook_bounds

log = logging.getLogger("migue.skeleton")

JOINT_INDEX: dict[str, int] = KEYPOINT_INDEX  # joint name -> index into the 137 keypoints

# Frame sizes the releases were processed at, smallest first (see `frame_size_of`).
KNOWN_FRAME_SIZES = ((1280, 720), (1920, 1080))

# The 35 points of a light-hand row, as indices into the 137 OpenPose keypoints.
LIGHT_HAND_POINTS: tuple[int, ...] = (
    tuple(range(BODY_SLICE.start, BODY_SLICE.stop))
    + tuple(KEYPOINT_INDEX["R" + tip] for tip in FINGERTIPS)
    + tuple(KEYPOINT_INDEX["L" + tip] for tip in FINGERTIPS)
)
LIGHT_HAND_COLUMNS = 1 + 3 * len(LIGHT_HAND_POINTS)  # 106

# OpenPose JSON: key -> (first keypoint, number of keypoints).
JSON_PARTS = {
    "pose_keypoints_2d": (0, 25),
    "face_keypoints_2d": (25, 70),
    "hand_left_keypoints_2d": (95, 21),
    "hand_right_keypoints_2d": (116, 21),
}
FLOAT32_MAX = float(np.finfo(np.float32).max)


# ---------------------------------------------------------------- tables

def read_openpose_xlsx(path: Path) -> np.ndarray:
    """A MiGA 2025 `<id>_openpose.xlsx` (no header, T x 411) -> (T, 137, 3) float32 in pixels.

    An empty sheet is real input (two videos of the release have one): it gives (0, 137, 3)."""
    from python_calamine import CalamineWorkbook

    try:
        require_regular_file(path)
        check_workbook_bounds(path, MAX_FRAMES, MAX_SHEET_COLUMNS)
    except (SheetBoundsError, OSError) as exc:
        raise SkeletonError(str(exc)) from None
    try:
        workbook = CalamineWorkbook.from_path(str(path))
        rows = workbook.get_sheet_by_index(0).to_python(skip_empty_area=False)
    except Exception as exc:  # calamine raises its own types for broken zips/xml
        raise SkeletonError(f"{path}: not a readable xlsx workbook ({exc})") from None
    rows = [r for r in rows if any(c not in ("", None) for c in r)]
    return _table_to_array(rows, path)


def _table_to_array(rows: list[list[object]], path: Path) -> np.ndarray:
    """Rows of 411 values (x, y, c of the 137 keypoints) -> (T, 137, 3)."""
    table = numeric_table(rows, N_COLUMNS, path, "137 OpenPose keypoints x (x, y, confidence)")
    return _clean(table.reshape(len(table), N_KEYPOINTS, 3))


def read_light_hand_csv(path: Path) -> np.ndarray:
    """A MiGA 2023/24 `<id>_light_hand.csv` (no header, T x 106) -> (T, 137, 3) float32."""
    try:
        require_regular_file(path)
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SkeletonError(f"{path}: cannot read the CSV ({exc})") from None
    return light_hand_rows_to_array(rows, path)


def light_hand_rows_to_array(rows: list[list[str]], path: Path) -> np.ndarray:
    """Rows of a light-hand CSV -> (T, 137, 3). Blank lines are skipped (as pandas does in the
    challenge's reader); a first line of text only is taken for a header and skipped."""
    rows = [r for r in rows if any(str(c).strip() for c in r)]
    if rows and not any(_is_number(c) for c in rows[0]):
        rows = rows[1:]
    table = numeric_table(rows, LIGHT_HAND_COLUMNS, path,
                           "frame index + 35 keypoints x (x, y, confidence)")
    out = np.zeros((len(table), N_KEYPOINTS, 3), dtype=np.float32)
    out[:, LIGHT_HAND_POINTS] = table[:, 1:].reshape(len(table), len(LIGHT_HAND_POINTS), 3)
    return _clean(out)


def numeric_table(rows: list[list[object]], n_columns: int, path: Path, what: str) -> np.ndarray:
    """(T, n_columns) float32 of finite numbers, or SkeletonError naming the row and column.
    Empty cells at the end of a row do not count as columns."""
    if not rows:
        return np.zeros((0, n_columns), dtype=np.float32)
    for i, row in enumerate(rows):
        width = len(row)
        while width and row[width - 1] in ("", None):
            width -= 1
        if width != n_columns:
            raise SkeletonError(f"{path}: row {i + 1} has {width} columns, expected {n_columns} ({what})")
    try:
        table = np.array([r[:n_columns] for r in rows], dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        table = np.empty((len(rows), n_columns), dtype=np.float64)
        for i, row in enumerate(rows):
            for j, cell in enumerate(row[:n_columns]):
                table[i, j] = _number(cell, path, i, j)
    with np.errstate(over="ignore"):
        table32 = table.astype(np.float32)
    if not np.isfinite(table32).all():
        i, j = np.argwhere(~np.isfinite(table32))[0]
        value, number = rows[i][j], float(table[i, j])
        if value is None or (isinstance(value, str) and not value.strip()):
            raise SkeletonError(f"{path}: row {i + 1}, column {j + 1} is empty")
        shown = value.strip()[:40] if isinstance(value, str) else repr(number) if math.isfinite(number) else number
        raise SkeletonError(f"{path}: row {i + 1}, column {j + 1} is {shown} (not a finite number)")
    return table32


def _number(cell: object, path: Path, i: int, j: int) -> float:
    where = f"{path}: row {i + 1}, column {j + 1}"
    if cell is None or (isinstance(cell, str) and not cell.strip()):
        raise SkeletonError(f"{where} is empty")
    try:
        return float(cell)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise SkeletonError(f"{where} is not a number ({_short(cell)})") from None


def _short(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _is_number(cell: object) -> bool:
    try:
        float(cell)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def _clean(keypoints: np.ndarray) -> np.ndarray:
    """Confidence 0 (or below) = not detected: x = y = c = 0, never a point at the origin."""
    keypoints[keypoints[..., 2] <= 0] = 0.0
    return keypoints


def read_kinect_csv(path: Path) -> np.ndarray:
    """SMG's `<id>_skeleton.csv` (no header, T x 275: `kinect.py`) -> (T, 25, 3) float32 world
    positions; SkeletonError naming the row and column of a short row or a cell that is not a
    finite number."""
    try:
        require_regular_file(path)
        with open(path, newline="") as f:
            rows = [r for r in csv.reader(f) if any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SkeletonError(f"{path}: cannot read the CSV ({exc})") from None
    table = numeric_table(rows, KINECT_COLUMNS, path, "25 Kinect joints x 11 values")
    world = table.reshape(len(table), N_KINECT, VALUES_PER_JOINT)[..., WORLD]
    return np.ascontiguousarray(world, dtype=np.float32)


# ---------------------------------------------------------------- OpenPose JSON

def read_openpose_frame(text: str | bytes, path: Path) -> np.ndarray | None:
    """One OpenPose `*_keypoints.json` -> (137, 3) of its most confident person, None if no one.

    Parts OpenPose was not asked for (empty or absent lists) are missing points."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and bad bytes are ValueErrors
        raise SkeletonError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("people"), list):
        raise SkeletonError(f"{path}: not an OpenPose frame (no 'people' list)")
    people = [_person(p, path, k) for k, p in enumerate(data["people"])]
    if not people:
        return None
    best = max(range(len(people)), key=lambda k: (float(people[k][BODY_SLICE, 2].sum()), -k))
    return _clean(people[best])


def _person(person: object, path: Path, k: int) -> np.ndarray:
    if not isinstance(person, dict):
        raise SkeletonError(f"{path}: people[{k}] is not an object")
    out = np.zeros((N_KEYPOINTS, 3), dtype=np.float32)
    for key, (first, count) in JSON_PARTS.items():
        values = person.get(key)
        if values is None or values == []:
            continue
        if not isinstance(values, list) or len(values) != 3 * count:
            got = f"{len(values)} values" if isinstance(values, list) else type(values).__name__
            raise SkeletonError(f"{path}: people[{k}].{key} has {got}, expected {3 * count} "
                                f"({count} keypoints x (x, y, confidence))")
        array = None
        if set(map(type, values)) <= {float, int}:
            with contextlib.suppress(OverflowError), np.errstate(over="ignore"):
                array = np.asarray(values, dtype=np.float64).astype(np.float32)
        if array is None or not np.isfinite(array).all():
            bad = next(i for i, v in enumerate(values)
                       if type(v) not in (float, int) or not math.isfinite(_float_or_inf(v))
                       or abs(_float_or_inf(v)) > FLOAT32_MAX)
            raise SkeletonError(f"{path}: people[{k}].{key}[{bad}] is {_short(values[bad])} "
                                "(not a finite number)")
        out[first:first + count] = array.reshape(count, 3)
    return out


def _float_or_inf(v: int | float) -> float:
    try:
        return float(v)
    except OverflowError:
        return math.inf


def json_frames(folder: Path) -> dict[int, Path]:
    """Frame number -> file, for the `*_keypoints.json` files directly in `folder`."""
    frames: dict[int, Path] = {}
    for path in json_frame_files(folder):
        match = JSON_FRAME.match(path.name)
        if not match:
            raise SkeletonError(f"{path}: no frame number in the name "
                                "(expected <name>_<frame>_keypoints.json)")
        frame = int(match["frame"])
        if frame >= MAX_FRAMES:
            raise SkeletonError(f"{path}: frame number {frame} is past the last frame any video may "
                                f"have ({MAX_FRAMES - 1})")
        if frame in frames:
            raise SkeletonError(f"{path}: a second file for frame {frame} (also {frames[frame].name})")
        frames[frame] = path
    return frames


def read_openpose_json_dir(folder: Path) -> np.ndarray:
    """A folder of OpenPose per-frame JSON -> (T, 137, 3), T = the last frame number + 1."""
    frames = json_frames(folder)
    if not frames:
        return np.zeros((0, N_KEYPOINTS, 3), dtype=np.float32)
    out = np.zeros((max(frames) + 1, N_KEYPOINTS, 3), dtype=np.float32)
    for frame, path in frames.items():
        try:
            require_regular_file(path)
            text = path.read_bytes()
        except OSError as exc:
            raise SkeletonError(f"{path}: cannot read ({exc})") from None
        person = read_openpose_frame(text, path)
        if person is not None:
            out[frame] = person
    return out


# ---------------------------------------------------------------- any format

def skeleton_format(path: Path) -> str:
    """'xlsx', 'light-hand', 'openpose-json' or 'stgcn' for a skeleton path, by its name."""
    name = path.name
    if PACK_REF in name and name.split(PACK_REF, 1)[0].endswith("_data.npy"):
        return "stgcn"
    if name.endswith(".xlsx"):
        return "xlsx"
    if name.endswith("_light_hand.csv"):
        return "light-hand"
    if name.endswith(SKELETON_SUFFIX):
        return "kinect"
    if path.is_dir():
        return "openpose-json"
    raise SkeletonError(f"{path}: not a known skeleton format (an _openpose.xlsx, a _light_hand.csv, "
                        "a folder of OpenPose *_keypoints.json, an ST-GCN pack or an SMG _skeleton.csv)")


def points_of(kind: str) -> dict[str, int]:
    """Joint name -> index into the arrays a skeleton format reads to: OpenPose's 137 keypoints,
    or the 25 Kinect joints of SMG's `_skeleton.csv`."""
    return KINECT_INDEX if kind == "kinect" else KEYPOINT_INDEX


def read_skeleton(path: Path) -> np.ndarray:
    """Any skeleton source -> (T, V, 3) float32: V = 137 OpenPose keypoints, or 25 Kinect joints for
    SMG (`points_of`); empty tables, and empty files, give T = 0."""
    kind = skeleton_format(path)
    if kind in ("xlsx", "light-hand", "kinect"):
        try:
            require_regular_file(path)
        except OSError as exc:
            raise SkeletonError(str(exc) if isinstance(exc, NotARegularFileError) else
                                f"{path}: cannot read ({exc})") from None
    if kind in ("xlsx", "light-hand", "kinect") and path.stat().st_size == 0:
        return np.zeros((0, len(points_of(kind)), 3), dtype=np.float32)
    if kind == "xlsx":
        return read_openpose_xlsx(path)
    if kind == "light-hand":
        return read_light_hand_csv(path)
    if kind == "kinect":
        return read_kinect_csv(path)
    if kind == "openpose-json":
        return read_openpose_json_dir(path)
    pack, video_id = str(path).rsplit(PACK_REF, 1)
    return video_keypoints(Path(pack), video_id)


def json_frame_files(folder: Path) -> list[Path]:
    """The files `read_openpose_json_dir` reads, in name order (exactly the bytes it depends on)."""
    return sorted(folder.glob("*_keypoints.json"))


def skeleton_fingerprint(path: Path, memo: FingerprintMemo | None = None) -> str:
    """Content fingerprint of exactly the bytes a skeleton is read from: the file; a JSON
    folder's frame files; an ST-GCN pack's rows (and labels) of the one video."""
    memo = memo or FingerprintMemo(None)
    kind = skeleton_format(path)
    if kind == "stgcn":
        pack, video_id = str(path).rsplit(PACK_REF, 1)
        return pack_fingerprint(Path(pack), video_id)
    if kind == "openpose-json":
        return memo.files(json_frame_files(path))
    return memo.file(path)


def parse_skeleton(path: Path, parsed_dir: Path | None) -> np.ndarray:
    """`read_skeleton`, reusing the parsed array kept under `parsed_dir` (in the cache root) by
    content fingerprint. A kept array that does not load as (T, 137, 3) float32 (a torn write,
    a foreign file) is parsed again, with a note in the log."""
    if parsed_dir is None or skeleton_format(path) == "stgcn":  # packs are memory-mapped: nothing to keep
        return read_skeleton(path)
    try:
        digest = skeleton_fingerprint(path, memo_for(parsed_dir.parent))
    except OSError as exc:
        raise SkeletonError(f"{path}: cannot read ({exc})") from None
    kept = parsed_dir / f"{digest.split(':')[-1]}.npy"
    if kept.exists():
        array = load_parsed(kept, len(points_of(skeleton_format(path))))
        if array is not None:
            return array
        log.warning("parsed skeleton %s of %s is torn or not ours: parsing %s again", kept.name, path, path.name)
    array = read_skeleton(path)
    parsed_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.save(buffer, array)
    atomic_write_bytes(kept, buffer.getvalue())
    return array


def load_parsed(path: Path, points: int = N_KEYPOINTS) -> np.ndarray | None:
    """A kept parsed skeleton, or None when it is not a whole (T, points, 3) float32 array."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if array.dtype != np.float32 or array.ndim != 3 or array.shape[1:] != (points, 3):
        return None
    return array


def load_skeleton(path: Path, parsed_dir: Path | None) -> np.ndarray:
    """The skeleton a unit's input is made from; an empty one is an error ('no skeleton frames')."""
    array = parse_skeleton(path, parsed_dir)
    if len(array) == 0:
        raise SkeletonError(f"{path}: no skeleton frames (the file is empty)")
    return array


def joint_values(keypoints: np.ndarray, joints: tuple[str, ...], path: Path, width: int,
                 height: int) -> np.ndarray:
    """(t, V, 3) pose input of the named joints from (t, P, 3) frames of the skeleton at `path`:
    OpenPose points as x, y normalised to [-1, 1] by the frame size (`width` x `height`) and their
    confidence, undetected ones all zero; Kinect joints as world x, y, z in metres (untracked all
    zero). A joint the format does not have is a SkeletonError naming the layouts that fit."""
    kind = skeleton_format(path)
    index = points_of(kind)
    missing = [name for name in joints if name not in index]
    if missing:
        fits = "kinect25" if kind == "kinect" else "imigue22, body25, openpose18 or coco"
        raise SkeletonError(f"{path}: a {kind} skeleton has no joint(s) {', '.join(missing[:5])} of the joint "
                            f"layout asked for (use --joints {fits})")
    picked = keypoints[:, [index[name] for name in joints]]  # (t, V, 3)
    if kind == "kinect":
        return picked.astype(np.float32, copy=True)
    half = np.array([width / 2, height / 2], dtype=np.float32)
    xy = (picked[..., :2] - half) / half
    seen = picked[..., 2:] > 0
    return np.concatenate([np.where(seen, xy, 0.0), picked[..., 2:]], axis=-1).astype(np.float32)


def frame_size_of(keypoints: np.ndarray) -> tuple[int, int]:
    """The frame size (width, height) a skeleton without its video was most likely made at.

    The smallest processing size of the releases (1280x720, then 1920x1080) that holds every
    detected point; past both, the points' extent (rounded up to even). Coordinates all within
    [0, 1] are already normalised: (1, 1). No detected point at all: 1920x1080."""
    seen = keypoints[..., 2] > 0
    if not seen.any():
        return KNOWN_FRAME_SIZES[-1]
    max_x, max_y = float(keypoints[..., 0][seen].max()), float(keypoints[..., 1][seen].max())
    if max_x <= 1.0 and max_y <= 1.0:
        return 1, 1
    for width, height in KNOWN_FRAME_SIZES:
        if max_x < width and max_y < height:
            return width, height
    return 2 * math.ceil((max_x + 1) / 2), 2 * math.ceil((max_y + 1) / 2)
