"""What every layout reader shares: finding files, attaching videos and skeletons, collecting
units, and recording problems once each, naming the file (and row).

A reader never raises on bad input: a problem is a line `<file>[: row <r>]: <what is wrong>`
in `manifest.problems`, the unit it concerns is left out (label rows) or fails later at
extraction with the same reason (skeletons, videos), and everything else is read.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from migue.cache.labels import MG_CLASS_NAMES
from migue.common.splits import split_named
from migue.common.windows import DEFAULT_WINDOW  # re-exported: frames per emotion window

from .errors import SkeletonError
from .files import (EMOTION_FILES, SHOWN_UNUSED, Found, Roots, as_roots, describe_roots, followed, scan,
                    video_key)
from .manifest import Manifest, Segment, Unit, Video, make_unit_id, window_units
from .agreement import disagreement
from .skeleton import frame_size_of, parse_skeleton, skeleton_format
from .video import VideoError, probe, read_frames



@dataclass
class DatasetManifest(Manifest):
    """A manifest plus notes: facts worth knowing that are not problems (pose-only data,
    empty skeleton files of the real release, test labels not released)."""

    notes: list[str] = field(default_factory=list)
    roots: tuple[Path, ...] = ()  # every folder read (root is the first)
    found: Found | None = field(default=None, repr=False)  # what the walk over the roots found
    used: set[Path] = field(default_factory=set, repr=False)  # files a reader used
    empty_splits: dict[str, str] = field(default_factory=dict)  # split -> where the reader looked
    split_sources: dict[str, list[Path]] = field(default_factory=dict)  # split -> folders/files it has
    labelled: set[str] = field(default_factory=set, repr=False)  # videos whose per-video labels were read
    class_names: tuple[str, ...] = MG_CLASS_NAMES  # the release's MG classes, by class index
    joint_layout: str = ""  # the skeleton joint layout its skeletons suit ("" = the extractor's default)


@dataclass(frozen=True)
class ReadOptions:
    window: int = DEFAULT_WINDOW
    read_skeletons: bool = False  # parse every skeleton (data check); else only where no video
    parsed_dir: Path | None = None  # keep parsed skeletons here by content hash
    dense: tuple[int, int] | None = None  # (window, stride): also dense windows over every sequence


def split_by_subject(subjects: list[str], seed: int = 0,
                     fractions: tuple[float, float] = (0.6, 0.2)) -> dict[str, str]:
    """Cross-subject split: subjects ordered by SHA-256 of `seed:subject`, the first 60% train,
    the next 20% val, the rest test (each split gets at least one subject when there are 3+).
    Deterministic, independent of file order, and adding a subject moves no other one."""
    order = sorted(set(subjects), key=lambda s: hashlib.sha256(f"{seed}:{s}".encode()).hexdigest())
    n = len(order)
    n_train, n_val = round(fractions[0] * n), round(fractions[1] * n)
    if n >= 3:
        n_val = max(n_val, 1)
        n_train = min(max(n_train, 1), n - n_val - 1)
    splits = {}
    for i, subject in enumerate(order):
        splits[subject] = "train" if i < n_train else "val" if i < n_train + n_val else "test"
    return splits


class Reader:
    """Builds one manifest: videos, units, problems and notes, each problem said once."""

    def __init__(self, root: Path | Roots, layout: str, opts: ReadOptions) -> None:
        self.roots = as_roots(root)
        self.manifest = DatasetManifest(root=self.roots[0], layout=layout, roots=self.roots)
        self.opts = opts
        self.sources: dict[str, str] = {}  # unit id -> where it was read ("file: row r")
        self.read_videos: dict[str, tuple[Video, str]] = {}  # video key -> (video, where it was read)
        self.windows: set[str] = set()  # window unit ids (an MG clip may have the same frames)
        self._found: Found | None = None

    @property
    def where(self) -> str:
        """The dataset folder(s), for messages."""
        return describe_roots(self.roots)

    @property
    def found(self) -> Found:
        """The files under the roots (one walk, on first use); its problems are reported."""
        if self._found is None:
            self._found = scan(self.roots)
            for text in self._found.problems:
                self.problem(text)
            for link, target in self._found.outside_links[:SHOWN_UNUSED]:
                self.note(f"{link} is a link to {target}, outside the dataset folder: not followed (give "
                          f"{target} as another dataset folder to read it)")
            if len(self._found.outside_links) > SHOWN_UNUSED:
                self.note(f"{len(self._found.outside_links) - SHOWN_UNUSED} more links to folders outside the "
                          "dataset folder: not followed")
            self.manifest.found = self._found
        return self._found

    def use(self, *paths: Path | None) -> None:
        """Record files a reader used (what is left is accounted for by `migue data check`)."""
        self.manifest.used.update(p for p in paths if p is not None)

    @property
    def problems(self) -> list[str]:
        return self.manifest.problems

    def problem(self, text: str) -> None:
        if text not in self.manifest.problems:
            self.manifest.problems.append(text)

    def source(self, split: str, path: Path) -> None:
        """Record that the download has `path` for `split` (a split folder, a pack, labels.csv):
        a split with none is missing from the download (a note), one with some that yields no
        video is a problem."""
        self.manifest.split_sources.setdefault(split, []).append(path)

    def note(self, text: str) -> None:
        if text not in self.manifest.notes:
            self.manifest.notes.append(text)

    def add_video(self, video_id: str, subject: str, split: str, emotion: int,
                  video_path: Path | None, skeleton_path: Path | None, name: str = "",
                  where: str = "", declared: int = 0, size: tuple[int, int] | None = None) -> Video | None:
        """Probe the video (a first frame must decode) and, where there is no usable video or
        every skeleton is to be checked, parse the skeleton for its frame count and size (checked
        against the video's, when both are there: `agreement.py`).
        `name`: the id as the release spells it (default: `video_id`); `where`: the folder or
        rows it was read from, for messages. `declared`: the frame count the release states
        (SMG's `_data.csv`): without a video it is the video's count, the skeleton is parsed only
        to check it, and a skeleton of another length is a problem; `size`: the frame size of a
        skeleton-only release whose points are not pixels of a known frame (Kinect's colour
        camera). None (and a problem naming both places) when an id of the same video was read
        before (`video_key`: the same id in two split folders, or `0006` and `6`): the reader
        adds none of this one's units."""
        where = where or str(skeleton_path or video_path or video_id)
        if self._read_before(video_id, split, where):
            return None
        self.use(video_path, skeleton_path)
        frames = width = height = 0
        info = None
        if video_path is not None:
            try:
                info = probe(video_path)
                if info.frames <= 0:
                    raise VideoError(f"{video_path}: no video frames")
                read_frames(video_path, np.array([0]))
                frames, width, height = info.frames, info.width, info.height
            except VideoError as exc:
                self.problem(f"{exc} (its units are left without video)")
                video_path = None
            except Exception as exc:  # a decoder failure of another kind is still this file's
                self.problem(f"{video_path}: cannot decode ({type(exc).__name__}: {exc}) "
                             "(its units are left without video)")
                video_path = None
        if skeleton_path is not None and ((video_path is None and not declared) or self.opts.read_skeletons):
            try:
                keypoints = parse_skeleton(skeleton_path, self.opts.parsed_dir)
            except SkeletonError as exc:
                self.problem(f"{exc} (its units will fail pose extraction)")
            else:
                if len(keypoints) == 0:
                    self.note(f"{skeleton_path}: no skeleton frames (empty file, as two of the real "
                              "release); its units will fail pose extraction")
                elif video_path is None and declared:
                    if len(keypoints) != declared:
                        self.problem(f"{skeleton_path}: {len(keypoints)} skeleton frames, but the release "
                                     f"declares {declared} (frames past the table read as missing joints)")
                elif video_path is None:
                    frames = len(keypoints)
                    width, height = size or frame_size_of(keypoints)
                elif info is not None and skeleton_format(skeleton_path) not in ("stgcn", "kinect"):
                    for text in disagreement(skeleton_path, keypoints, video_path, info):
                        self.problem(text)
        if video_path is None and declared:
            frames, (width, height) = declared, size or (0, 0)
        video = Video(video_id, subject=subject, split=split, emotion=emotion, video_path=video_path,
                      skeleton_path=skeleton_path, frames=frames, width=width, height=height,
                      name=name or video_id)
        self.manifest.videos[video_id] = video
        self.read_videos[video_key(video_id)] = (video, where)
        return video

    def _read_before(self, video_id: str, split: str, where: str) -> bool:
        """Whether a video with this id (`video_key`: with or without leading zeros) was read
        before; if so the problem names both places. One video is read once, in one split."""
        first = self.read_videos.get(video_key(video_id))
        if first is None:
            return False
        video, first_where = first
        if video.video_id == video_id:
            what = f"is also in the {video.split} split ({first_where}): one video id in two "
            what += "split folders" if video.split != split else "places"
        else:
            what = (f"is video {video.video_id} of the {video.split} split ({first_where}): ids match "
                    "with or without leading zeros, so both name one video")
        self.problem(f"{where}: video {video_id} of the {split} split {what}; this one is left out "
                     f"(the video is read from {first_where} only)")
        return True

    def labelled(self, video: Video) -> None:
        """Record that `video`'s per-video labels were read: its labelled MG clips become its
        segments (`attach_segments`), none of them meaning no gesture at all."""
        self.manifest.labelled.add(video.video_id)

    @staticmethod
    def extent(video: Video) -> tuple[int | None, str]:
        """The frame count label rows are checked against: the video's, else the skeleton's."""
        if video.video_path is not None:
            return video.frames, "video"
        return (video.frames or None), "skeleton"

    def add_clip(self, video: Video, label: int, start: int, end: int, source: str,
                 unit_id: str | None = None, label_row: int = -1) -> None:
        """One MG unit (`label_row`: its 0-based row in the video's label file); a second unit
        with the same id (same video and frames) is a problem."""
        unit_id = unit_id or make_unit_id(video.video_id, start, end)
        if unit_id in self.sources:
            self.problem(f"{source}: duplicate clip {unit_id} (same video and frame range as "
                         f"{self.sources[unit_id]}); kept the first")
            return
        self.sources[unit_id] = source
        self.manifest.units.append(Unit(unit_id, "mg", video.video_id, video.subject, video.split,
                                        start, end, label, video.emotion,
                                        video_name=video.name or video.video_id, label_row=label_row))

    def add_windows(self, video: Video) -> None:
        """Emotion windows tile videos that have a decodable video file (a unit id is never
        added twice: the manifest has one row per unit)."""
        if video.video_path is None:
            return
        for unit in window_units(video, video.frames, self.opts.window):
            if unit.unit_id in self.windows:
                self.problem(f"{video.video_path}: window {unit.unit_id} was added before; kept the first")
                continue
            self.windows.add(unit.unit_id)
            self.manifest.units.append(unit)


def attach_segments(manifest: DatasetManifest) -> None:
    """Give each video whose per-video labels were read (`Reader.labelled`) its segments: its
    labelled MG clips, in (start, end, label) order. A video with an unlabelled clip (test rows
    without a class) or whose labels were not read keeps None."""
    clips: dict[str, list[Unit]] = {}
    for unit in manifest.of_kind("mg"):
        clips.setdefault(unit.video_id, []).append(unit)
    for vid, video in manifest.videos.items():
        own = clips.get(vid, [])
        if vid not in manifest.labelled or any(u.mg_label < 0 for u in own):
            continue
        segments = sorted((Segment(u.mg_label, u.start, u.end) for u in own), key=lambda g: (g.start, g.end, g.label))
        manifest.videos[vid] = replace(video, segments=tuple(segments))


def read_emotion_files(reader: Reader) -> dict[str, int]:
    """Emotion labels from `train_label.csv`, `validation_label.csv` (and `test_label.csv`)
    at any depth below the roots, by video key."""
    from .labels import read_emotion_labels

    emotion: dict[str, int] = {}
    for name in EMOTION_FILES:
        for path in sorted(p for p in reader.found.emotion_files if p.name == name):
            reader.use(path)
            for vid, label in read_emotion_labels(path, reader.manifest.problems).items():
                emotion[video_key(vid)] = label
    return emotion


def split_folders(root: Path | Roots) -> list[Path]:
    """`imigue_skeleton_<split>` folders at any depth below the roots (the 2025 zips unpack them
    two levels down, `imigue_data_phase1/datasets/`). One walk over folders only; a split
    folder's own subtree is not walked, and a linked one pointing out of the roots is left out."""
    found = []
    roots = as_roots(root)
    for top in roots:
        for dirpath, dirnames, _ in os.walk(top):
            dirnames.sort()
            found += [Path(dirpath) / name for name in dirnames
                      if _SPLIT_SUFFIX.match(name) and followed(Path(dirpath) / name, roots)]
            dirnames[:] = [name for name in dirnames if not _SPLIT_SUFFIX.match(name)]
    return sorted(found)


_SPLIT_SUFFIX = re.compile(r"^imigue_skeleton_(?P<split>.+)$")


def split_of_folder(folder: Path) -> str | None:
    match = _SPLIT_SUFFIX.match(folder.name)
    return split_named(match["split"]) if match else None


@dataclass(frozen=True)
class Unused:
    """Files of one kind under the roots that no reader used: how many, and the first few."""

    kind: str
    count: int
    first: tuple[Path, ...]


def unused_files(manifest: DatasetManifest) -> list[Unused]:
    """What under the roots no reader used, by kind of file (the walk's own tally: nothing is
    walked twice)."""
    found, used = manifest.found, manifest.used
    if found is None:
        return []
    known = {"video files (.mp4)": found.videos, "OpenPose sheets (_openpose.xlsx)": found.xlsx,
             "light-hand skeletons (_light_hand.csv)": found.light_hand,
             "OpenPose JSON folders": found.json_dirs, "clip label files (_label.csv)": found.label_files,
             "emotion label files": {str(p): p for p in found.emotion_files}}
    out = []
    for kind, table in known.items():
        left = sorted(p for p in table.values() if p not in used)
        if left:
            out.append(Unused(kind, len(left), tuple(left[:SHOWN_UNUSED])))
    in_tables = {p for table in known.values() for p in table.values()}
    used_other = [p for p in used if p not in in_tables]
    for kind, count in sorted(found.other_counts.items()):
        count -= sum(1 for p in used_other if (p.suffix.lower() or "(no extension)") == kind)
        if count > 0:
            shown = tuple(p for p in found.other[kind] if p not in used)
            out.append(Unused(f"other files ({kind})", count, shown))
    return out
