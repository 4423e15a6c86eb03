"""Raw OpenPose output in the MiGA folders: the skeleton of a video is the folder of its
per-frame JSON, as `openpose --write_json` writes it, in the video's folder or below it.

    imigue_skeleton_{train,validate,test}/<id>/[<any folder>/]<name>_<frame:012d>_keypoints.json
    imigue_skeleton_{train,validate,test}/<id>/<id>_label.csv
    <id>.mp4 anywhere under the root (optional), train_label.csv, validation_label.csv

Each frame's most confident person is taken; a frame without people is a missing frame.
(JSON folders next to a full-release `labels.csv` are read by the `imigue` layout.)
"""
from __future__ import annotations

import os
from pathlib import Path

from .common import DatasetManifest, ReadOptions
from .miga import LOOKS_FOR  # noqa: F401 (what the reader looks for, in messages)
from .miga import looks_like as _looks_like
from .miga import read_miga

NAME = "openpose-json"
SKELETON = "a folder of *_keypoints.json in {id}/"


def looks_like(root: Path) -> bool:
    return _looks_like(root, "*_keypoints.json") or _looks_like(root, "*/*_keypoints.json")


def find_skeleton(video_dir: Path, vid: str) -> Path | None:
    """The first folder (the video's own, then its sub-folders in name order) holding frames."""
    for dirpath, dirnames, filenames in os.walk(video_dir):
        dirnames.sort()
        if any(name.endswith("_keypoints.json") for name in filenames):
            return Path(dirpath)
    return None


def read(root: Path, opts: ReadOptions) -> DatasetManifest:
    return read_miga(root, NAME, opts, find_skeleton, SKELETON)
