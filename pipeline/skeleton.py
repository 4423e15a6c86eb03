"""Reading OpenPose skeleton tables into (T, 137, 3) arrays, parsed once and kept by file hash."""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from .openpose import N_COLUMNS, N_KEYPOINTS


class SkeletonError(ValueError):
    """A skeleton file that cannot be used; the message names the file and row."""


def read_openpose_xlsx(path: Path) -> np.ndarray:
    """A MiGA 2025 `<id>_openpose.xlsx` (no header, T x 411) -> (T, 137, 3) float32 in pixels.

    An empty sheet is real input (two videos of the release have one): it gives (0, 137, 3)."""
    from python_calamine import CalamineWorkbook

    try:
        workbook = CalamineWorkbook.from_path(str(path))
        rows = workbook.get_sheet_by_index(0).to_python(skip_empty_area=False)
    except Exception as exc:  # calamine raises its own types for broken zips/xml
        raise SkeletonError(f"{path}: not a readable xlsx workbook ({exc})") from None
    rows = [r for r in rows if any(c not in ("", None) for c in r)]
    return _table_to_array(rows, path)


def _table_to_array(rows: list[list[object]], path: Path) -> np.ndarray:
    if not rows:
        return np.zeros((0, N_KEYPOINTS, 3), dtype=np.float32)
    for i, row in enumerate(rows):
        width = len(row)
        while width and row[width - 1] in ("", None):
            width -= 1
        if width != N_COLUMNS:
            raise SkeletonError(f"{path}: row {i + 1} has {width} columns, expected {N_COLUMNS} "
                                "(137 OpenPose keypoints x (x, y, confidence))")
    try:
        table = np.array([r[:N_COLUMNS] for r in rows], dtype=np.float32)
    except (TypeError, ValueError):
        bad = next((i, j) for i, r in enumerate(rows) for j, c in enumerate(r[:N_COLUMNS])
                   if not isinstance(c, (int, float)))
        raise SkeletonError(f"{path}: row {bad[0] + 1}, column {bad[1] + 1} is not a number "
                            f"({rows[bad[0]][bad[1]]!r})") from None
    if not np.isfinite(table).all():
        i, j = np.argwhere(~np.isfinite(table))[0]
        raise SkeletonError(f"{path}: row {i + 1}, column {j + 1} is {table[i, j]} (not finite)")
    return table.reshape(len(rows), N_KEYPOINTS, 3)


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def load_skeleton(path: Path, parsed_dir: Path | None) -> np.ndarray:
    """Read a skeleton file, reusing the parsed array kept under `parsed_dir` by content hash."""
    if parsed_dir is None:
        return read_openpose_xlsx(path)
    kept = parsed_dir / f"{file_digest(path)}.npy"
    if kept.exists():
        return np.load(kept)
    array = read_openpose_xlsx(path)
    parsed_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=parsed_dir, prefix=".tmp-", suffix=".npy")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        os.replace(tmp, kept)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return array
