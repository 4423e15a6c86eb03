"""The MiGA 2025 release layout.

    imigue_skeleton_{train,validate,test}/<id>/<id>_openpose.xlsx   (T x 411, no header)
    imigue_skeleton_{train,validate,test}/<id>/<id>_label.csv       (class,start,end)
    <split folder>/<id>/<id>.mp4                                     (any folder under the root)
    train_label.csv, validation_label.csv[, test_label.csv]          (video_id,label)

See `miga.py` for what is shared by the MiGA layouts (splits, subjects, videos).
"""
from __future__ import annotations

from pathlib import Path

from .common import DatasetManifest, ReadOptions
from .miga import LOOKS_FOR  # noqa: F401 (what the reader looks for, in messages)
from .miga import looks_like as _looks_like
from .miga import named_file, read_miga

NAME = "miga2025"
SKELETON = "{id}_openpose.xlsx"


def looks_like(root: Path) -> bool:
    return _looks_like(root, "*_openpose.xlsx")


find_skeleton = named_file(SKELETON)


def read(root: Path, opts: ReadOptions) -> DatasetManifest:
    """Read the layout under `root`; problems are collected, not raised."""
    return read_miga(root, NAME, opts, find_skeleton, SKELETON)
