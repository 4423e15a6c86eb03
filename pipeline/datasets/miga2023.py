"""The MiGA 2023/24 "light hand" layout.

    imigue_skeleton_{train,validate,test}/<id>/<id>_light_hand.csv  (T x 106, no header)
    imigue_skeleton_{train,validate,test}/<id>/<id>_label.csv       (class,start,end)
    <id>.mp4 anywhere under the root (optional), train_label.csv, validation_label.csv

A light-hand row is the frame index, then 35 points x (x, y, c): the 25 BODY_25 joints, 5
right-hand and 5 left-hand fingertips; they are placed at their OpenPose indices of the
137-point array (`skeleton.LIGHT_HAND_POINTS`), every other point is missing.
"""
from __future__ import annotations

from pathlib import Path

from .common import DatasetManifest, ReadOptions
from .miga import LOOKS_FOR  # noqa: F401 (what the reader looks for, in messages)
from .miga import looks_like as _looks_like
from .miga import named_file, read_miga

NAME = "miga2023"
SKELETON = "{id}_light_hand.csv"


def looks_like(root: Path) -> bool:
    return _looks_like(root, "*_light_hand.csv")


find_skeleton = named_file(SKELETON)


def read(root: Path, opts: ReadOptions) -> DatasetManifest:
    return read_miga(root, NAME, opts, find_skeleton, SKELETON)
