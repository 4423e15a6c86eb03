"""Bounds on what any input can make the readers allocate."""
from __future__ import annotations

# No skeleton, label or pack may reach past this frame: 4x the longest release video (26 min)
# at 30 fps. It bounds what any input can make us allocate: (T, 137, 3) float32 is 330 MB here.
MAX_FRAMES = 200_000
MAX_SHEET_COLUMNS = 1024  # 411 values a row, plus room for stray empty columns
