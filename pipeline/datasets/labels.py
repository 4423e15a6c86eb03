"""Label files: MiGA per-video clip labels, the full release's `labels.csv`, emotion labels.

Problems are strings `<file>: row <r>: <what is wrong>` (rows 1-based, counting a header);
the row is skipped and everything else is read.
"""
from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from migue.cache.files import require_regular_file

from .bounds import MAX_FRAMES
from .classes import raw_label_to_index

RELEASE_COLUMNS = ("video_id", "class", "start_frame", "end_frame", "win_or_lose", "subject_id")
WIN = {"1", "win", "w", "won", "positive", "pos"}
LOSE = {"0", "lose", "l", "lost", "loss", "negative", "neg"}


class LabelError(ValueError):
    """A label value or row that cannot be used; the message says what is wrong."""


@dataclass(frozen=True)
class ClipLabel:
    row: int  # 1-based row in the file
    mg_label: int  # class index 0..31, -1 unlabelled (test files without classes)
    start: int
    end: int
    index: int = 0  # 0-based among the file's non-blank rows: k of the clip name `<id>_<k>`
    form: str = ""  # how an unlabelled row was written: "start,end" or "placeholder class 'x'"


def parse_int(text: object, name: str) -> int:
    """An integer cell ('12', ' 12 ', '12.0'); anything else is a LabelError."""
    if not isinstance(text, str) or not text.strip():
        raise LabelError(f"{name} is empty" if isinstance(text, str) or text is None
                         else f"{name} {text!r} is not an integer")
    s = text.strip()
    try:
        return int(s)
    except ValueError:
        pass
    try:
        value = float(s)
    except ValueError:
        raise LabelError(f"{name} {s[:40]!r} is not an integer") from None
    if not math.isfinite(value) or value != int(value):
        raise LabelError(f"{name} {s[:40]!r} is not an integer")
    return int(value)


def parse_clip(raw_class: object, start: object, end: object, n_frames: int | None,
               source: str = "video") -> tuple[int, int, int]:
    """(class index, start, end) from the raw cells; frames 0-based and inclusive.
    `n_frames`, when known, is the frame count of the `source` ('video', or 'skeleton' when
    there is no video): the end must be before it."""
    raw = parse_int(raw_class, "class")
    s, e = parse_int(start, "start frame"), parse_int(end, "end frame")
    try:
        label = raw_label_to_index(raw)
    except ValueError:
        raise LabelError(f"unknown class {raw} (expected 1..31 or 99)") from None
    if s < 0:
        raise LabelError(f"start frame {s} is negative")
    if s > e:
        raise LabelError(f"start frame {s} is after end frame {e}")
    if n_frames is not None and e >= n_frames:
        raise LabelError(f"end frame {e} is past the {source}'s last frame {n_frames - 1}")
    if e >= MAX_FRAMES:  # the extent is not known yet: bound it by what any video may have
        raise LabelError(f"end frame {e} is past the last frame any video may have ({MAX_FRAMES - 1})")
    return label, s, e


def parse_clip_row(cells: Sequence[object], n_frames: int | None,
                   source: str = "video") -> tuple[int, int, int]:
    """A MiGA label row `class,start,end` (trailing empty cells ignored) -> (class index, start, end)."""
    cells = list(cells)
    while cells and (cells[-1] is None or (isinstance(cells[-1], str) and not cells[-1].strip())):
        cells.pop()
    if len(cells) != 3:
        raise LabelError(f"has {len(cells)} columns, expected 3 (class,start,end)")
    return parse_clip(*cells, n_frames, source)


def parse_win_or_lose(text: object) -> int:
    """1 win, 0 lose (also 1/0, w/l, positive/negative); '' is unknown (-1)."""
    if not isinstance(text, str):
        raise LabelError(f"emotion label {text!r} is not win/lose or 1/0")
    value = text.strip().lower()
    if value.endswith(".0"):
        value = value[:-2]
    if value == "":
        return -1
    if value in WIN:
        return 1
    if value in LOSE:
        return 0
    raise LabelError(f"emotion label {text.strip()[:40]!r} is not win/lose or 1/0")


def _read_rows(path: Path, what: str, problems: list[str]) -> list[list[str]] | None:
    try:
        require_regular_file(path)
        with open(path, newline="", encoding="utf-8-sig") as f:
            return list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        problems.append(f"{path}: cannot read {what} ({exc})")
        return None


def read_clip_labels(path: Path, n_frames: int | None, problems: list[str],
                     source: str = "video", unlabelled: bool = False) -> list[ClipLabel]:
    """`<id>_label.csv`: no header, integer rows `class,start,end` (0-based, inclusive).
    Bad rows are reported in `problems` (file, row, what) and skipped. With `unlabelled`
    (test files as released) a row `start,end` or one whose class is a placeholder (not a
    class id: empty, text, 0, -1, ...) is an unlabelled clip (class -1, its `form` says which)."""
    rows = _read_rows(path, "the label file", problems)
    clips: list[ClipLabel] = []
    index = -1
    for row_no, row in enumerate(rows or [], start=1):
        if not any(c.strip() for c in row):
            continue
        index += 1
        try:
            if unlabelled:
                clip = _unlabelled_clip(row, n_frames, source)
                if clip is not None:
                    clips.append(ClipLabel(row_no, -1, clip[1], clip[2], index, clip[0]))
                    continue
            label, start, end = parse_clip_row(row, n_frames, source)
        except LabelError as exc:
            problems.append(f"{path}: row {row_no}: {exc}")
            continue
        clips.append(ClipLabel(row_no, label, start, end, index))
    return clips


def _unlabelled_clip(row: Sequence[str], n_frames: int | None, source: str) -> tuple[str, int, int] | None:
    """(form, start, end) of a test row without a usable class; None when it has a class id."""
    cells = [c for c in row]
    while cells and not cells[-1].strip():
        cells.pop()
    if len(cells) == 2:
        form, (start, end) = "start,end", cells
    elif len(cells) == 3:
        try:
            raw_label_to_index(parse_int(cells[0], "class"))
            return None
        except (LabelError, ValueError):
            form, (start, end) = f"placeholder class {cells[0].strip()[:20]!r}", cells[1:]
    else:
        return None
    _, s, e = parse_clip("1", start, end, n_frames, source)  # frames checked as any clip's
    return form, s, e


@dataclass(frozen=True)
class ReleaseRow:
    """One row of the full release's `labels.csv`, its clip cells not yet checked."""

    row: int
    video_id: str
    subject: str
    emotion: int
    clip: tuple[str, str, str]  # class, start_frame, end_frame as written


def read_release_labels(path: Path, problems: list[str]) -> list[ReleaseRow]:
    """`labels.csv`: a header naming `video_id, class, start_frame, end_frame, win_or_lose,
    subject_id` (any order, any case, extra columns ignored), one row per MG clip."""
    rows = _read_rows(path, "labels.csv", problems)
    if not rows:
        if rows is not None:
            problems.append(f"{path}: empty (expected a header {','.join(RELEASE_COLUMNS)})")
        return []
    header = [c.strip().lower() for c in rows[0]]
    missing = [c for c in RELEASE_COLUMNS if c not in header]
    if missing:
        problems.append(f"{path}: row 1: header lacks column(s) {', '.join(missing)} "
                        f"(expected {','.join(RELEASE_COLUMNS)}, got {','.join(header)[:200]})")
        return []
    col = {name: header.index(name) for name in RELEASE_COLUMNS}
    out = []
    for row_no, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        where = f"{path}: row {row_no}"
        if len(row) != len(header):
            problems.append(f"{where}: has {len(row)} columns, expected {len(header)} (as the header)")
            continue
        video_id, subject = row[col["video_id"]].strip(), row[col["subject_id"]].strip()
        if not video_id or not subject:
            problems.append(f"{where}: video_id and subject_id must not be empty")
            continue
        try:
            emotion = parse_win_or_lose(row[col["win_or_lose"]])
        except LabelError as exc:
            problems.append(f"{where}: {exc}")
            continue
        out.append(ReleaseRow(row_no, video_id, subject, emotion,
                              (row[col["class"]], row[col["start_frame"]], row[col["end_frame"]])))
    return out


def read_emotion_labels(path: Path, problems: list[str]) -> dict[str, int]:
    """`train_label.csv`-style files: `video_id,label` rows (a header is optional), label 1 = win,
    0 = lose (win/lose also read)."""
    rows = _read_rows(path, "emotion labels", problems)
    labels: dict[str, int] = {}
    if not rows:
        return labels
    start = 1
    header = [c.strip().lower() for c in rows[0]]
    vid_col, label_col = 0, 1
    if "video_id" in header and "label" in header:
        vid_col, label_col = header.index("video_id"), header.index("label")
    elif len(rows[0]) >= 2 and rows[0][1].strip().lower() in WIN | LOSE:
        start = 0  # no header
    else:
        problems.append(f"{path}: row 1: expected a header video_id,label, got {','.join(rows[0])[:200]}")
        return labels
    for row_no, row in enumerate(rows[start:], start=start + 1):
        if not any(c.strip() for c in row):
            continue
        where = f"{path}: row {row_no}"
        if len(row) <= max(vid_col, label_col) or not row[vid_col].strip():
            problems.append(f"{where}: expected video_id,label, got {','.join(row)[:200]}")
            continue
        try:
            label = parse_win_or_lose(row[label_col])
        except LabelError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if label < 0:
            problems.append(f"{where}: emotion label is empty")
            continue
        vid = row[vid_col].strip()
        if vid in labels and labels[vid] != label:
            problems.append(f"{where}: video {vid} was labelled {labels[vid]} in an earlier row; kept that")
            continue
        labels[vid] = label
    return labels
