"""The unit schema: the columns every entry's unit table carries, declared once.

The manifest produces these records (`migue.pipeline.datasets.manifest.Unit` is `UnitRecord`),
the writer validates every shard's columns against them (`check_units`), and readers (fusion)
name columns through `COLUMN`, never by string literals of their own. Entries written before a
column was added still read: `with_defaults` fills the optional columns they lack.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from migue.common.splits import SPLITS

NO_LABEL = -1
MG_KIND, WINDOW_KIND = "mg", "window"  # labelled MG clips; emotion windows tiling a long video
DENSE_KIND = "dense"  # dense windows over whole sequences (e.g. 32 frames every 8): online recognition
KINDS = (MG_KIND, WINDOW_KIND, DENSE_KIND)
UNKNOWN_SEGMENTS = "?"  # the `segments` of a sequence whose ground truth is unknown (unlabelled test)


@dataclass(frozen=True)
class UnitRecord:
    """One unit of work: a labelled MG clip (`kind='mg'`), an emotion window (`kind='window'`) or a
    dense window over a whole sequence (`kind='dense'`, labelled with its centre frame's class).

    Frames are 0-based and inclusive. `unit_id` is the video id plus the frame range, stable
    and unique across the dataset. `video_name` is the video id as the release spells it
    ("0054"; empty: same as `video_id`), `label_row` the clip's 0-based row in its video's
    label file (-1 for windows): a MiGA Track 1 submission names clip k of video v `<v>_<k>`.
    `fingerprint` is the content hash of the input bytes the unit was computed from (filled at
    extraction). `segments` (dense windows only, on each sequence's first window) is the sequence's
    whole ground truth (`format_segments`; "?" unknown): fusion cannot read the dataset."""

    unit_id: str
    kind: str  # MG_KIND or WINDOW_KIND
    video_id: str
    subject: str
    split: str  # one of SPLITS
    start: int
    end: int
    mg_label: int = NO_LABEL  # class index 0..31
    emotion: int = NO_LABEL  # 1 win, 0 lose, -1 unknown
    video_name: str = ""  # the video id as the release spells it ("0054"); empty = video_id
    label_row: int = NO_LABEL  # 0-based row of the clip in its video's label file; -1 for windows
    fingerprint: str = ""  # content hash of the input bytes this unit was computed from here
    segments: str = ""  # dense kind, first window of a sequence: "label:start-end ..." of it; "?" unknown

    @property
    def frames(self) -> int:
        return self.end - self.start + 1


@dataclass(frozen=True)
class Column:
    name: str
    type: type  # str or int
    default: Any  # MISSING: required


UNIT_COLUMNS: dict[str, Column] = {
    f.name: Column(f.name, {"str": str, "int": int}[str(f.type)], f.default) for f in fields(UnitRecord)}
# The writer requires only the unit id (a store of features for something other than a manifest,
# a test's minimal entry, still writes); every other column has a default ("" or -1 where the
# record itself has none) and, when given, its type and (kind, split) its values are checked.
REQUIRED = ("unit_id",)
OPTIONAL_DEFAULTS: dict[str, Any] = {c.name: ((-1 if c.type is int else "") if c.default is MISSING else c.default)
                                     for c in UNIT_COLUMNS.values() if c.name not in REQUIRED}
COLUMN = SimpleNamespace(**{name: name for name in UNIT_COLUMNS})  # COLUMN.mg_label == "mg_label"


class UnitSchemaError(ValueError):
    """Unit columns that do not follow the schema; the message names the column (and unit)."""


def unit_columns(units: Sequence[UnitRecord]) -> dict[str, list[Any]]:
    """Records -> the column mapping a shard stores."""
    return {name: [getattr(u, name) for u in units] for name in UNIT_COLUMNS}


def check_units(units: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """The shard's unit columns, checked against the schema and completed with the defaults of
    missing optional columns. Unknown or missing required columns, values of the wrong type, an
    unknown kind or split: UnitSchemaError naming the column and the first bad unit."""
    unknown = sorted(set(units) - set(UNIT_COLUMNS))
    if unknown:
        raise UnitSchemaError(f"unit columns {unknown} are not in the unit schema (known: {list(UNIT_COLUMNS)})")
    missing = [name for name in REQUIRED if name not in units]
    if missing:
        raise UnitSchemaError(f"unit columns {missing} are required by the unit schema")
    n = len(units["unit_id"])
    out: dict[str, list[Any]] = {}
    for name, column in UNIT_COLUMNS.items():
        values = list(units[name]) if name in units else [OPTIONAL_DEFAULTS[name]] * n
        if len(values) != n:
            raise UnitSchemaError(f"unit column {name!r} has {len(values)} values for {n} units")
        out[name] = [_checked(column, v, units["unit_id"][i]) for i, v in enumerate(values)]
    for name, allowed in (("kind", KINDS), ("split", SPLITS)):
        bad = next((i for i, v in enumerate(out[name]) if v not in allowed and v != ""), None)
        if bad is not None:
            raise UnitSchemaError(f"unit {out['unit_id'][bad]}: {name} {out[name][bad]!r} is not one of {allowed}")
    return out


def _checked(column: Column, value: Any, unit_id: Any) -> Any:
    if column.type is int and isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    if column.type is str and isinstance(value, (str, np.str_)):
        return str(value)
    raise UnitSchemaError(f"unit {unit_id}: column {column.name!r} holds {value!r} "
                          f"({type(value).__name__}), expected {column.type.__name__}")


def with_defaults(table: pd.DataFrame) -> pd.DataFrame:
    """A unit table with every optional column present (entries written before it existed)."""
    for name, default in OPTIONAL_DEFAULTS.items():
        if name not in table:
            table[name] = default
    return table


def format_segments(segments: Sequence[tuple[int, int, int]] | None) -> str:
    """A sequence's gestures (label, start, end; 0-based class, 0-based inclusive frames) as the
    `segments` column holds them: "label:start-end" joined by spaces in (start, end, label) order;
    "" for a labelled sequence without a gesture, UNKNOWN_SEGMENTS ("?") for None (unknown)."""
    if segments is None:
        return UNKNOWN_SEGMENTS
    ordered = sorted(((int(label), int(start), int(end)) for label, start, end in segments),
                     key=lambda g: (g[1], g[2], g[0]))
    return " ".join(f"{label}:{start}-{end}" for label, start, end in ordered)


def parse_segments(text: str, unit_id: str = "") -> list[tuple[int, int, int]] | None:
    """The `segments` column back to [(label, start, end), ...]; None for "?" (unknown), [] for "".
    A malformed item is a UnitSchemaError naming the unit and the item."""
    text = text.strip()
    if text == UNKNOWN_SEGMENTS:
        return None
    out = []
    for item in text.split():
        label, _, span = item.partition(":")
        start, _, end = span.partition("-")
        try:
            segment = int(label), int(start), int(end)
        except ValueError:
            segment = None
        if segment is None or segment[0] < 0 or segment[1] < 0 or segment[2] < segment[1]:
            where = f"unit {unit_id}: " if unit_id else ""
            raise UnitSchemaError(f"{where}segments item {item!r} is not label:start-end (0-based class, "
                                  "0-based inclusive frames, start <= end)")
        out.append(segment)
    return out
