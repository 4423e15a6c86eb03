"""The 32 iMiGUE micro-gesture (MG) classes and their raw label ids.

Raw ids in the label files are 1..31 plus 99 (the 32nd class, "illustrative");
loaders map 1..31 to indices 0..30 and 99 to index 31.
"""
from __future__ import annotations

from migue.cache.labels import MG_CLASS_NAMES

N_MG_CLASSES = len(MG_CLASS_NAMES)  # 32
LAST_RAW_LABEL = 99  # raw id of the 32nd class


def raw_label_to_index(raw: int) -> int:
    """Map a raw MG label (1..31 or 99) to a class index (0..31)."""
    if raw == LAST_RAW_LABEL:
        return N_MG_CLASSES - 1
    if 1 <= raw <= N_MG_CLASSES - 1:
        return raw - 1
    raise ValueError(f"raw MG label {raw!r} is not in 1..31 or 99")


def index_to_raw_label(i: int) -> int:
    """Map a class index (0..31) back to its raw MG label (1..31 or 99)."""
    if i == N_MG_CLASSES - 1:
        return LAST_RAW_LABEL
    if 0 <= i < N_MG_CLASSES - 1:
        return i + 1
    raise ValueError(f"MG class index {i!r} is not in 0..31")
