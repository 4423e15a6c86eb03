"""Finding a release's files: one walk over the roots, videos, skeletons and label files by video key."""
from __future__ import annotations

import contextlib
import os
import pwd
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from migue.cache.files import require_regular_file

# OpenPose's per-frame output: `<prefix>_<frame>_keypoints.json`.
JSON_FRAME = re.compile(r"^(?P<prefix>.*?)_?(?P<frame>\d+)_keypoints\.json$")
EMOTION_FILES = {"train_label.csv": "train", "validation_label.csv": "val", "val_label.csv": "val",
                 "test_label.csv": "test"}


Roots = tuple[Path, ...]


def as_roots(root: Path | str | Sequence[Path | str]) -> Roots:
    """One dataset folder, or several read as one dataset (phase 1 and phase 2 unpacked into
    separate folders, the RGB and skeleton downloads apart), as a tuple of paths. The file
    system root, a home folder or a folder holding one is refused (ValueError): reading it
    would walk every file on the disk or of its users."""
    roots = (root,) if isinstance(root, (str, Path)) else tuple(root)
    if not roots:
        raise ValueError("no dataset folder given")
    roots = tuple(dict.fromkeys(Path(r) for r in roots))
    for folder in roots:
        why = _too_wide(folder.resolve())
        if why:
            raise ValueError(f"{folder}: refusing to read {folder.resolve()} as a dataset folder: {why}; "
                             "name the folder that holds the release")
    return roots


def _too_wide(folder: Path) -> str | None:
    """Why `folder` (resolved) is no dataset folder: the file system root, or a home."""
    if folder == Path(folder.anchor):
        return "it is the file system root"
    for home in _homes():
        if folder == home:
            return "it is a home folder"
        if home.is_relative_to(folder):
            return f"it holds a home folder ({home})"
    return None


def _homes() -> set[Path]:
    """The user's home folder ($HOME, and the account's)."""
    homes = set()
    with contextlib.suppress(RuntimeError, KeyError, OSError):
        homes.add(Path.home().resolve())
    with contextlib.suppress(KeyError, OSError):
        homes.add(Path(pwd.getpwuid(os.getuid()).pw_dir).resolve())
    return {h for h in homes if h != Path(h.anchor)}


def within(path: Path, roots: Roots) -> bool:
    """`path`'s folder is inside one of the roots once links are resolved (a folder linked in
    from elsewhere is not read: give it as another dataset folder)."""
    return _inside(path.parent.resolve(), roots)


def followed(folder: Path, roots: Roots) -> bool:
    """`folder` itself, links resolved, is inside one of the roots (a linked folder pointing out
    of them is not read; `scan` names it in `outside_links`)."""
    return _inside(folder.resolve(), roots)


def _inside(folder: Path, roots: Roots) -> bool:
    return any(folder.is_relative_to(top.resolve()) for top in roots)


def describe_roots(roots: Roots) -> str:
    return ", ".join(str(r) for r in roots)


def video_key(video_id: str) -> str:
    """Ids match across files with or without leading zeros ('0012' is '12')."""
    return (video_id.lstrip("0") or "0") if video_id.isdigit() else video_id


SHOWN_UNUSED = 5  # paths shown per kind of file no reader used


@dataclass
class Found:
    """Files under the roots, by video key: videos, skeletons of every format, label files,
    and a tally of every other file (by kind, with the first few paths)."""

    videos: dict[str, Path] = field(default_factory=dict)
    xlsx: dict[str, Path] = field(default_factory=dict)
    light_hand: dict[str, Path] = field(default_factory=dict)
    json_dirs: dict[str, Path] = field(default_factory=dict)
    label_files: dict[str, Path] = field(default_factory=dict)  # <id>_label.csv
    emotion_files: list[Path] = field(default_factory=list)  # train_label.csv, ...
    other: dict[str, list[Path]] = field(default_factory=dict)  # kind -> first paths
    other_counts: dict[str, int] = field(default_factory=dict)  # kind -> how many
    problems: list[str] = field(default_factory=list)
    outside_links: list[tuple[Path, Path]] = field(default_factory=list)  # (link, its target): not followed

    def skeleton(self, video_id: str) -> Path | None:
        key = video_key(video_id)
        return self.xlsx.get(key) or self.light_hand.get(key) or self.json_dirs.get(key)

    def add_other(self, path: Path) -> None:
        kind = path.suffix.lower() or "(no extension)"
        self.other_counts[kind] = self.other_counts.get(kind, 0) + 1
        shown = self.other.setdefault(kind, [])
        if len(shown) < SHOWN_UNUSED:
            shown.append(path)


def scan(root: Path | Roots) -> Found:
    """One walk over each root (folder listings only, no file is opened): `<id>.mp4`,
    `<id>_openpose.xlsx`, `<id>_light_hand.csv`, `<id>_label.csv`, the emotion label files,
    and folders of OpenPose JSON (keyed by the JSON name's prefix, else the folder's name);
    every other file is tallied by kind. Linked folders are not followed; those leading out of
    the roots are listed (`outside_links`)."""
    found = Found()
    suffixes = {".mp4": found.videos, "_openpose.xlsx": found.xlsx,
                "_light_hand.csv": found.light_hand, "_label.csv": found.label_files}
    roots = as_roots(root)
    for top in roots:
        for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
            dirnames.sort()
            _outside_links(found, Path(dirpath), dirnames, roots)
            _scan_folder(found, suffixes, Path(dirpath), filenames)
    return found


def _outside_links(found: Found, folder: Path, dirnames: list[str], roots: Roots) -> None:
    for name in dirnames:
        path = folder / name
        if path.is_symlink() and not _inside(path.resolve(), roots):
            found.outside_links.append((path, path.resolve()))


def _scan_folder(found: Found, suffixes: dict[str, dict[str, Path]], folder: Path,
                 filenames: list[str]) -> None:
    json_prefix = None
    for name in sorted(filenames):
        if name.endswith("_keypoints.json"):
            if json_prefix is None:
                match = JSON_FRAME.match(name)
                json_prefix = match["prefix"] if match else ""
            continue
        if name in EMOTION_FILES:
            found.emotion_files.append(folder / name)
            continue
        for suffix, table in suffixes.items():
            if name.endswith(suffix) and len(name) > len(suffix):
                _add(found, table, name[: -len(suffix)], folder / name)
                break
        else:
            found.add_other(folder / name)
    if json_prefix is not None:
        _add(found, found.json_dirs, json_prefix or folder.name, folder)


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
