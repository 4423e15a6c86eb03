"""The manifest: every unit of work (MG clips, emotion windows) with its video and labels."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from migue.cache.units import DENSE_KIND, NO_LABEL, WINDOW_KIND, format_segments
from migue.cache.units import UnitRecord as Unit  # the manifest's rows are the cache's unit records


@dataclass(frozen=True)
class Segment:
    """One labelled gesture of a long sequence: class index (0-based, as `Unit.mg_label`) and its
    first and last frame, 0-based and inclusive (a segment has end - start + 1 frames). Readers
    convert each release's own convention (SMG: 1-based frames) to this one."""

    label: int
    start: int
    end: int

    @property
    def frames(self) -> int:
        return self.end - self.start + 1


@dataclass(frozen=True)
class Video:
    """One long video (a press conference) or skeleton sequence and its files; `name` is its id as
    the release spells it (empty: same as `video_id`). `frames` is its frame count (the video's,
    else the skeleton's or the release's declared count; 0 unknown). `segments` are its labelled
    gestures in start order (the MG clip rows of its label file are its segments): None when the
    release gives this video no per-video labels (a test split without labels, clip packs), ()
    when it has a label file without a gesture; every frame outside them is background."""

    video_id: str
    subject: str
    split: str
    emotion: int  # 1 win, 0 lose, -1 unknown
    video_path: Path | None
    skeleton_path: Path | None
    frames: int = 0
    width: int = 0
    height: int = 0
    name: str = ""
    segments: tuple[Segment, ...] | None = None

    def frame_labels(self) -> np.ndarray:
        """(frames,) int64: each frame's class index, NO_LABEL (-1) for background. Where segments
        overlap, the one starting later (on a tie, the shorter: a gesture nested in another) holds the
        shared frames.
        ValueError naming the video when its segments or its frame count are unknown."""
        if self.segments is None or self.frames <= 0:
            what = "segments" if self.segments is None else "frame count"
            raise ValueError(f"video {self.video_id}: no frame labels ({what} unknown)")
        labels = np.full(self.frames, NO_LABEL, dtype=np.int64)
        for segment in sorted(self.segments, key=lambda g: (g.start, -g.end)):  # inner ones last
            labels[segment.start:segment.end + 1] = segment.label
        return labels


def make_unit_id(video_id: str, start: int, end: int) -> str:
    return f"{video_id}:{start:06d}-{end:06d}"


@dataclass
class Manifest:
    """Videos, units and the problems met while reading them (file, row, what is wrong)."""

    root: Path
    layout: str
    videos: dict[str, Video] = field(default_factory=dict)
    units: list[Unit] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    dense: tuple[int, int] | None = None  # (window, stride) of its dense units; None: it has none

    def of_kind(self, kind: str) -> list[Unit]:
        return [u for u in self.units if u.kind == kind]



def window_units(video: Video, n_frames: int, window: int, stride: int | None = None) -> list[Unit]:
    """Fixed-length windows tiling a long video (the last partial window is dropped
    unless the video is shorter than one window, then it is the whole video)."""
    stride = stride or window
    if n_frames <= 0:
        return []
    starts = list(range(0, max(n_frames - window, 0) + 1, stride))
    units = []
    for s in starts:
        e = min(s + window, n_frames) - 1
        units.append(Unit(make_unit_id(video.video_id, s, e), WINDOW_KIND, video.video_id, video.subject,
                          video.split, s, e, NO_LABEL, video.emotion, video_name=video.name or video.video_id))
    return units


def dense_starts(n_frames: int, window: int, stride: int) -> list[tuple[int, int]]:
    """(start, end) of the dense windows over a sequence of `n_frames` frames, 0-based inclusive:
    windows of `window` frames starting at 0, every `stride`; when the last full window stops short
    of the last frame, one more window at the next step, cut at the sequence's end (shorter), so
    every frame is covered and the windows stay evenly spaced (`fusion.online.StepGrid.from_windows`).
    A sequence shorter than a window is one window of all its frames."""
    if window < 1 or stride < 1:
        raise ValueError(f"dense windows need a window and a stride of at least 1 frame, got {window} and {stride}")
    if n_frames <= 0:
        return []
    spans = [(s, s + window - 1) for s in range(0, max(n_frames - window, 0) + 1, stride)]
    last_end = spans[-1][1]
    if last_end < n_frames - 1:
        start = spans[-1][0] + stride
        spans.append((start, n_frames - 1))
    return [(s, min(e, n_frames - 1)) for s, e in spans]


def dense_units(video: Video, window: int, stride: int) -> list[Unit]:
    """The dense windows over a whole sequence (`dense_starts`), each labelled with the class of its
    centre frame (`start + (end - start) // 2`; NO_LABEL for background or unknown segments). The
    first window (start 0) carries the sequence's whole ground truth in `segments` ("?" unknown);
    every window keeps the video's emotion. No window for a video of unknown frame count."""
    spans = dense_starts(video.frames, window, stride)
    labels = video.frame_labels() if video.segments is not None and spans else None
    truth = format_segments(None if video.segments is None else
                            [(g.label, g.start, g.end) for g in video.segments])
    units = []
    for start, end in spans:
        centre = start + (end - start) // 2
        label = int(labels[centre]) if labels is not None else NO_LABEL
        units.append(Unit(make_unit_id(video.video_id, start, end), DENSE_KIND, video.video_id, video.subject,
                          video.split, start, end, label, video.emotion, video_name=video.name or video.video_id,
                          segments=truth if start == 0 else ""))
    return units


def add_dense_units(manifest: Manifest, window: int, stride: int) -> None:
    """Dense windows over every video of known frame count (the video's, or the skeleton's for
    skeleton-only releases), after its segments are attached."""
    for video in manifest.videos.values():
        manifest.units.extend(dense_units(video, window, stride))
    manifest.dense = (window, stride)
