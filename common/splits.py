"""The three splits, and how the releases spell them in file and folder names."""
from __future__ import annotations

SPLITS = ("train", "val", "test")
# A release's spelling (folder suffix, pack part, file stem) -> the split it names.
SPLIT_SPELLINGS = {"train": "train", "val": "val", "validate": "val", "validation": "val", "test": "test"}


def split_named(spelling: str) -> str | None:
    """The split a release's spelling names (case-insensitive), None if it names none."""
    return SPLIT_SPELLINGS.get(spelling.lower())
