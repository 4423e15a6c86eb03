"""Finding a release's files: one walk over a root, videos, skeletons and label files by video key."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from migue.cache.files import require_regular_file

# OpenPose's per-frame output: `<prefix>_<frame>_keypoints.json`.
JSON_FRAME = re.compile(r"^(?P<prefix>.*?)_?(?P<frame>\d+)_keypoints\.json$")


def video_key(video_id: str) -> str:
    """Ids match across files with or without leading zeros ('0012' is '12')."""
    return (video_id.lstrip("0") or "0") if video_id.isdigit() else video_id


@dataclass
class Found:
    """Files under a root, by video key: videos and skeletons of every format."""

    videos: dict[str, Path] = field(default_factory=dict)
    xlsx: dict[str, Path] = field(default_factory=dict)
    light_hand: dict[str, Path] = field(default_factory=dict)
    json_dirs: dict[str, Path] = field(default_factory=dict)
    label_files: dict[str, Path] = field(default_factory=dict)  # <id>_label.csv
    problems: list[str] = field(default_factory=list)

    def skeleton(self, video_id: str) -> Path | None:
        key = video_key(video_id)
        return self.xlsx.get(key) or self.light_hand.get(key) or self.json_dirs.get(key)


def scan(root: Path) -> Found:
    """One walk over the root: `<id>.mp4`, `<id>_openpose.xlsx`, `<id>_light_hand.csv`,
    `<id>_label.csv` and folders of OpenPose JSON (keyed by the JSON name's prefix, else the
    folder's name, else its parent's when the folder has a generic name)."""
    found = Found()
    suffixes = {".mp4": found.videos, "_openpose.xlsx": found.xlsx,
                "_light_hand.csv": found.light_hand, "_label.csv": found.label_files}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        folder = Path(dirpath)
        json_prefix = None
        for name in sorted(filenames):
            if name.endswith("_keypoints.json"):
                if json_prefix is None:
                    match = JSON_FRAME.match(name)
                    json_prefix = match["prefix"] if match else ""
                continue
            for suffix, table in suffixes.items():
                if name.endswith(suffix) and len(name) > len(suffix):
                    stem = name[: -len(suffix)]
                    if suffix == "_label.csv" and stem in ("train", "validation", "val", "test"):
                        continue  # emotion label files
                    _add(found, table, stem, folder / name)
        if json_prefix is not None:
            vid = json_prefix or folder.name
            _add(found, found.json_dirs, vid, folder)
    return found


def _add(found: Found, table: dict[str, Path], video_id: str, path: Path) -> None:
    key = video_key(video_id)
    if table is not found.json_dirs:
        try:
            require_regular_file(path)
        except OSError as exc:  # a FIFO would block the first open, a device read forever
            found.problems.append(f"{exc} (left out)")
            return
    if key in table:
        found.problems.append(f"{path}: a second file for video {video_id} (also {table[key]}); "
                              "kept the first")
        return
    table[key] = path
