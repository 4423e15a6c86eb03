"""Label files: MiGA per-video clip labels and per-video emotion labels."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ..classes import raw_label_to_index


@dataclass(frozen=True)
class ClipLabel:
    row: int  # 1-based row in the file
    mg_label: int  # class index 0..31
    start: int
    end: int


def read_clip_labels(path: Path, n_frames: int | None, problems: list[str]) -> list[ClipLabel]:
    """`<id>_label.csv`: no header, integer rows `class,start,end` (0-based, inclusive).
    Bad rows are reported in `problems` (file, row, what) and skipped."""
    clips = []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot read label file ({exc})")
        return clips
    for row_no, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or all(not c.strip() for c in row):
            continue
        where = f"{path}: row {row_no}"
        if len(row) < 3:
            problems.append(f"{where}: expected class,start,end, got {row}")
            continue
        try:
            raw, start, end = (int(float(c)) if c.strip() else None for c in row[:3])  # type: ignore[misc]
            if raw is None or start is None or end is None:
                raise ValueError
        except ValueError:
            problems.append(f"{where}: class,start,end must be integers, got {row[:3]}")
            continue
        try:
            label = raw_label_to_index(raw)
        except ValueError as exc:
            problems.append(f"{where}: unknown class ({exc})")
            continue
        if start < 0 or start > end:
            problems.append(f"{where}: start {start} is after end {end} (or negative)")
            continue
        if n_frames is not None and end >= n_frames:
            problems.append(f"{where}: end frame {end} is past the video's last frame {n_frames - 1}")
            continue
        clips.append(ClipLabel(row_no, label, start, end))
    return clips


def read_emotion_labels(path: Path, problems: list[str]) -> dict[str, int]:
    """`train_label.csv`-style files: header `video_id,label`, label 1 = win, 0 = lose."""
    labels: dict[str, int] = {}
    try:
        rows = list(csv.DictReader(path.read_text().splitlines()))
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot read emotion labels ({exc})")
        return labels
    for row_no, row in enumerate(rows, start=2):
        vid, label = (row.get("video_id") or "").strip(), (row.get("label") or "").strip()
        if not vid or label not in ("0", "1"):
            problems.append(f"{path}: row {row_no}: expected video_id and label 0/1, got {row}")
            continue
        labels[vid] = int(label)
    return labels
