"""Segment files: read and check prediction/truth CSVs, write predictions as CSV or as a MiGA zip.

A segment CSV has a header with at least `video_id,label,start,end` and, optionally, `score` (any
column order; other columns are ignored). Frames are integers >= 0 with start <= end; a score is a
finite number, given on every row or on none (empty cells). A label is kept as text, except that a whole number becomes an int (`01` and `1` are
the same class). A bad file is refused with a `SegmentFileError` naming the file, the row (1 = the
first row under the header) with its line, and what is wrong; a zero-byte file holds no segments.

The MiGA 2023 Track 2 submission is one CSV per test sequence, `<video_id>.csv` with rows
`GestureID,StartFrame,EndFrame`, zipped.
"""
from __future__ import annotations

import csv
import io
import math
import zipfile
from collections.abc import Callable, Hashable, Iterable, Sequence
from pathlib import Path

from migue.cache.atomic import atomic_write_bytes

from .score import Segment, score_segments

REQUIRED = ("video_id", "label", "start", "end")
CSV_COLUMNS = ("video_id", "label", "start", "end", "score")
MIGA_COLUMNS = ("GestureID", "StartFrame", "EndFrame")
FORMATS = ("csv", "miga")


class SegmentFileError(ValueError):
    """A segment CSV that cannot be read as segments (the message names the file and the row)."""


def read_segments(path: str | Path) -> list[Segment]:
    """The segments of the CSV at `path`, in file order; a SegmentFileError for a bad file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SegmentFileError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    if not text.strip():
        return []
    reader = csv.reader(io.StringIO(text))
    header = [name.strip() for name in next(reader)]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise SegmentFileError(f"{path}: missing column(s) {', '.join(missing)} (header: {','.join(header)}; "
                               f"expected {','.join(REQUIRED)}[,score])")
    duplicated = sorted({c for c in header if c in CSV_COLUMNS and header.count(c) > 1})
    if duplicated:
        raise SegmentFileError(f"{path}: column(s) {', '.join(duplicated)} appear more than once in the header")
    at = {name: header.index(name) for name in CSV_COLUMNS if name in header}
    segments, rows = [], []
    for row_number, row in enumerate(reader, 1):
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        where = f"{path}, row {row_number} (line {reader.line_num})"
        if len(row) < len(header):
            raise SegmentFileError(f"{where}: {len(row)} values for {len(header)} columns")
        cells = {name: row[i].strip() for name, i in at.items()}
        if not cells["video_id"]:
            raise SegmentFileError(f"{where}: video_id is empty")
        if not cells["label"]:
            raise SegmentFileError(f"{where}: label is empty")
        start, end = _frame(cells["start"], "start", where), _frame(cells["end"], "end", where)
        if start > end:
            raise SegmentFileError(f"{where}: start {start} > end {end}")
        score = _score(cells["score"], where) if cells.get("score") else None
        segments.append(Segment(cells["video_id"], parse_label(cells["label"]), start, end, score))
        rows.append((row_number, reader.line_num))
    scored = [s.score is not None for s in segments]
    if any(scored) and not all(scored):
        (row, line), (first, _) = rows[scored.index(False)], rows[scored.index(True)]
        raise SegmentFileError(f"{path}, row {row} (line {line}): no score, while row {first} has one "
                               "(give every row a score, or none)")
    return segments


def parse_label(text: str) -> Hashable:
    """A label as read from a file: a whole number as an int, anything else as its text."""
    try:
        return int(text)
    except ValueError:
        return text


def _frame(text: str, column: str, where: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise SegmentFileError(f"{where}: {column} {text!r} is not an integer frame") from None
    if not math.isfinite(value) or not value.is_integer():
        raise SegmentFileError(f"{where}: {column} {text!r} is not an integer frame")
    if value < 0:
        raise SegmentFileError(f"{where}: {column} {text} is negative (frames count from 0 or 1)")
    return int(value)


def _score(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SegmentFileError(f"{where}: score {text!r} is not a number") from None
    if not math.isfinite(value):
        raise SegmentFileError(f"{where}: score {text!r} is not a finite number (NaN or infinite)")
    return value


def csv_text(segments: Iterable[Segment]) -> str:
    """`video_id,label,start,end,score` rows (an empty score where a segment has none)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for s in segments:
        writer.writerow([s.video_id, s.label, s.start, s.end, "" if s.score is None else repr(float(s.score))])
    return buffer.getvalue()


def write_csv(segments: Iterable[Segment], path: str | Path) -> Path:
    """One CSV `video_id,label,start,end,score` at `path`, published atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, csv_text(segments).encode())
    return path


def miga_files(segments: Iterable[Segment], videos: Sequence[str] | None = None,
               gesture_id: Callable[[Hashable], int] = int) -> dict[str, str]:
    """File name -> text of the MiGA 2023 submission: `<video_id>.csv` with `GestureID,StartFrame,EndFrame`
    rows in start order. Every video of `videos` gets a file (a header alone when nothing was found
    in it); `gesture_id` turns a label into the challenge's class number."""
    by_video: dict[str, list[Segment]] = {v: [] for v in videos or ()}
    for s in segments:
        if videos is not None and s.video_id not in by_video:
            raise ValueError(f"prediction for video {s.video_id!r}, which is not among the {len(by_video)} "
                             "sequences being submitted")
        by_video.setdefault(s.video_id, []).append(s)
    files = {}
    for video, found in sorted(by_video.items()):
        name = f"{video}.csv"
        if "/" in video or "\\" in video or video in ("", ".", ".."):
            raise ValueError(f"video id {video!r} cannot name a file in the submission zip")
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(MIGA_COLUMNS)
        for s in sorted(found, key=lambda s: (s.start, s.end)):
            writer.writerow([gesture_id(s.label), s.start, s.end])
        files[name] = buffer.getvalue()
    return files


def write_miga(segments: Iterable[Segment], out: str | Path, videos: Sequence[str] | None = None,
               gesture_id: Callable[[Hashable], int] = int, zipped: bool = True) -> Path:
    """The MiGA submission at `out`: a zip of one CSV per sequence (zipped), or those CSVs in folder
    `out`; each file is published atomically."""
    out = Path(out)
    files = miga_files(segments, videos, gesture_id)
    if zipped:
        out.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, text in files.items():
                archive.writestr(name, text)
        atomic_write_bytes(out, buffer.getvalue())
    else:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            atomic_write_bytes(out / name, text.encode())
    return out


def score_files(pred_path: str | Path, truth_path: str | Path, iou: float = 0.3, matching: str = "strict"
                ) -> dict:
    """`score_segments` of a prediction CSV against a truth CSV (what `migue score online` prints)."""
    return score_segments(read_segments(pred_path), read_segments(truth_path), iou, matching)
