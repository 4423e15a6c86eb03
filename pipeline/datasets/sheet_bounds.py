"""Bounding an xlsx before a native reader sees it.

python-calamine allocates the whole rectangle up to a sheet's last cell: a 4.8 KB workbook
with cells at A1 and XFD1048576 asks for 512 GiB and aborts the process (no exception Python
can catch). So every worksheet of the zip is streamed first (bounded memory; deflate expands
at most ~1000x, so the work is bounded by the file's size) and refused when its dimension
record or any row or cell lies past `max_rows` x `max_columns`, or when the rectangle up to
its last cell is far larger than the cells it holds (a skeleton table is dense).
"""
from __future__ import annotations

import re
import zipfile
from pathlib import Path
from xml.etree.ElementTree import ParseError, iterparse

CELL_REF = re.compile(r"^\$?([A-Z]{1,3})\$?(\d{1,9})$")
DENSITY_SLACK = 4096  # cells of rectangle allowed beyond twice the cells present


class SheetBoundsError(ValueError):
    """A workbook whose sheets declare more than a skeleton table can hold; names the file."""


def _ref(ref: str) -> tuple[int, int] | None:
    """'XFD1048576' -> (row 1048576, column 16384); None when not a cell reference."""
    match = CELL_REF.match(ref.strip().upper())
    if not match:
        return None
    col = 0
    for ch in match[1]:
        col = col * 26 + ord(ch) - 64
    return int(match[2]), col


def check_workbook_bounds(path: Path, max_rows: int, max_columns: int) -> None:
    """Raise SheetBoundsError unless every worksheet of `path` fits max_rows x max_columns."""
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.filename.endswith(".xml"):
                    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                        raise SheetBoundsError(f"{path}: zip member {info.filename} uses compression "
                                               f"method {info.compress_type} (xlsx uses deflate)")
                    with archive.open(info) as member:
                        _check_sheet(member, f"{path} ({info.filename})", max_rows, max_columns)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, NotImplementedError) as exc:
        raise SheetBoundsError(f"{path}: not a readable xlsx workbook ({exc})") from None


def _check_sheet(stream, where: str, max_rows: int, max_columns: int) -> None:
    """Stream one XML part; only a <worksheet> is checked (the first element tells)."""
    row = col = last_row = last_col = cells = 0
    try:
        events = iterparse(stream, events=("start",))
        for n, (_, element) in enumerate(events):
            tag = element.tag.rsplit("}", 1)[-1]
            if n == 0 and tag != "worksheet":
                return
            if tag == "dimension":
                for ref in element.get("ref", "").split(":"):
                    _within(_ref(ref) or (0, 0), where, f"its dimension record {element.get('ref')!r}",
                            max_rows, max_columns)
            elif tag == "row":
                given = element.get("r")
                row = int(given) if given and given.isdigit() else row + 1
                col = 0
                _within((row, 1), where, f"row {row}", max_rows, max_columns)
            elif tag == "c":
                pos = _ref(element.get("r", ""))
                r, col = pos if pos else (row, col + 1)
                _within((r, col), where, f"cell {element.get('r') or f'row {r} column {col}'}",
                        max_rows, max_columns)
                cells += 1
                last_row, last_col = max(last_row, r), max(last_col, col)
            element.clear()
    except ParseError as exc:
        raise SheetBoundsError(f"{where}: not well-formed XML ({exc})") from None
    if last_row * last_col > 2 * cells + DENSITY_SLACK:
        raise SheetBoundsError(f"{where}: {cells} cells spread over {last_row} rows x {last_col} columns "
                               "(a skeleton table is dense; a reader would allocate the whole rectangle)")


def _within(pos: tuple[int, int], where: str, what: str, max_rows: int, max_columns: int) -> None:
    row, col = pos
    if row > max_rows or col > max_columns:
        raise SheetBoundsError(f"{where}: {what} lies at row {row}, column {col}, past the "
                               f"{max_rows} rows x {max_columns} columns a skeleton sheet may have")
