"""Steps <-> segments: training targets from annotated gestures, and the decoding of per-step scores
(and boundary offsets) back into gestures.

A sequence is a run of steps, one per dense window: step t is the window that starts at frame
`first_frame + t * stride` and lasts `window` frames; its centre stands for it. Per step a head gives
class-or-background probabilities (column 0 background, column c + 1 class c) and, for a detector,
the distances from the centre to the gesture's start and end, in steps.

Decoding (`decode_steps`): every step whose class probability reaches `score_threshold` proposes
[centre - start offset, centre + end offset] with that probability as score; proposals shorter than
`min_length` frames go; class-wise NMS keeps the best of those of a class overlapping by more than
`nms_iou`; at most `max_segments` per sequence are kept. The probe baseline's decoding
(`merge_steps`) instead joins consecutive steps of one arg-max class. The settings are training keys
(`--set score_threshold=0.3`), held by `DecodeSettings`.
"""
from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from .score import Segment, tiou


@dataclass(frozen=True)
class StepGrid:
    """Where the steps of a sequence lie in frames: step t covers frames [first_frame + t * stride,
    first_frame + t * stride + window - 1]; `last_frame` (when known) clips decoded segments."""

    stride: int = 8
    window: int = 32
    first_frame: int = 0
    last_frame: int | None = None

    @classmethod
    def from_windows(cls, starts: Sequence[int], ends: Sequence[int], last_frame: int | None = None,
                     video_id: str = "") -> "StepGrid":
        """The grid of one sequence's dense windows, given their first and last frames (inclusive) in
        step order: a ValueError naming the video where the windows are not evenly spaced, or where one
        but the last (which may be cut by the sequence's end) differs in length from the first."""
        starts, ends = np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)
        where = f"sequence {video_id!r}: " if video_id else ""
        if len(starts) == 0 or len(starts) != len(ends):
            raise ValueError(f"{where}{len(starts)} window starts and {len(ends)} ends; expected as many, at least one")
        window = int(ends[0] - starts[0] + 1)
        strides = np.diff(starts)
        if len(strides) and (strides[0] <= 0 or (strides != strides[0]).any()):
            raise ValueError(f"{where}windows are not evenly spaced (starts {starts[:6].tolist()}...)")
        lengths = ends - starts + 1
        if (lengths[:-1] != window).any() or lengths[-1] > window or lengths[-1] < 1:
            raise ValueError(f"{where}windows of different lengths {sorted(set(lengths.tolist()))}")
        stride = int(strides[0]) if len(strides) else window
        return cls(stride, window, int(starts[0]), last_frame)

    def centres(self, num_steps: int) -> np.ndarray:
        """The centre frame of each step, (T,) float."""
        return self.first_frame + np.arange(num_steps) * self.stride + (self.window - 1) / 2

    def clip(self, frame: float) -> int:
        """`frame` rounded to a whole frame and clipped to the sequence."""
        top = self.last_frame if self.last_frame is not None else math.inf
        return int(min(max(round(frame), self.first_frame), top))


# key -> (default, what it is); all are `--set` keys of the online task
DECODE_KEYS: dict[str, tuple[Any, str]] = {
    "score_threshold": (0.2, "a step proposes a gesture of a class when its probability reaches this"),
    "nms_iou": (0.5, "class-wise NMS: a proposal overlapping a better one of its class by a tIoU above this goes"),
    "min_length": (16, "frames (end - start) a gesture needs at least; the starter kit drops 15 or fewer"),
    "max_segments": (200, "per sequence, the best-scored gestures kept; 0 = all"),
}


@dataclass(frozen=True)
class DecodeSettings:
    """How per-step scores become gestures (see DECODE_KEYS)."""

    score_threshold: float = DECODE_KEYS["score_threshold"][0]
    nms_iou: float = DECODE_KEYS["nms_iou"][0]
    min_length: int = DECODE_KEYS["min_length"][0]
    max_segments: int = DECODE_KEYS["max_segments"][0]

    def __post_init__(self) -> None:
        for key, low, high in (("score_threshold", 0, 1), ("nms_iou", 0, 1)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise ValueError(f"setting {key}={value!r}: expected a number >= {low} and <= {high}")
        for key in ("min_length", "max_segments"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"setting {key}={value!r}: expected an integer >= 0")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "DecodeSettings":
        """The decode keys of a run config (the others are ignored; missing ones take their default)."""
        return cls(**{f.name: config[f.name] for f in fields(cls) if f.name in config})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def encode_targets(gestures: Sequence[tuple[int, int, int]], num_steps: int, grid: StepGrid
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per-step targets of one sequence from its gestures (class, start frame, end frame):
    labels (T,) int64, 0 background or class + 1, and offsets (T, 2) float32, the distances in steps
    from the centre to the start and the end (0 on background). A step belongs to the shortest
    gesture holding its centre; a gesture holding no centre takes the nearest free step."""
    centres = grid.centres(num_steps)                                     # (T,)
    labels = np.zeros(num_steps, dtype=np.int64)                          # (T,)
    offsets = np.zeros((num_steps, 2), dtype=np.float32)                  # (T, 2)
    length = np.full(num_steps, np.inf)                                   # (T,) length of the owner
    for cls, start, end in gestures:
        inside = (centres >= start) & (centres <= end) & (end - start < length)
        if not inside.any() and num_steps:
            nearest = int(np.argmin(np.abs(centres - (start + end) / 2)))
            inside[nearest] = labels[nearest] == 0
        labels[inside] = cls + 1
        offsets[inside, 0] = np.maximum(centres[inside] - start, 0) / grid.stride
        offsets[inside, 1] = np.maximum(end - centres[inside], 0) / grid.stride
        length[inside] = end - start
    return labels, offsets


def nms(segments: Sequence[Segment], iou: float) -> list[Segment]:
    """Class-wise non-maximum suppression: by descending score (ties: input order), a segment is kept
    unless a kept one of its video and class overlaps it by a tIoU above `iou`."""
    kept: list[Segment] = []
    order = sorted(range(len(segments)), key=lambda i: -(segments[i].score or 0.0))
    for i in order:
        s = segments[i]
        if all(k.video_id != s.video_id or k.label != s.label or tiou(k.start, k.end, s.start, s.end) <= iou
               for k in kept):
            kept.append(s)
    return kept


def _finish(proposals: list[Segment], settings: DecodeSettings, use_nms: bool) -> list[Segment]:
    """Drop the short, suppress overlaps, cap the count; by descending score."""
    proposals = [s for s in proposals if s.end - s.start >= settings.min_length]
    kept = nms(proposals, settings.nms_iou) if use_nms else sorted(proposals, key=lambda s: -(s.score or 0.0))
    return kept[:settings.max_segments] if settings.max_segments else kept


def decode_steps(probs: np.ndarray, offsets: np.ndarray, grid: StepGrid, settings: DecodeSettings,
                 video_id: str, classes: Sequence[Hashable] | None = None) -> list[Segment]:
    """The gestures of one sequence from a detector's per-step class-or-background probabilities
    (T, C + 1) and start/end offsets in steps (T, 2); labels are class indices or `classes[c]`."""
    probs, offsets = np.asarray(probs, dtype=np.float64), np.asarray(offsets, dtype=np.float64)
    num_steps = probs.shape[0]
    if offsets.shape != (num_steps, 2):
        raise ValueError(f"offsets of shape {offsets.shape}: expected ({num_steps}, 2) for {num_steps} steps")
    centres = grid.centres(num_steps)                                     # (T,)
    starts = centres - np.maximum(offsets[:, 0], 0) * grid.stride         # (T,)
    ends = centres + np.maximum(offsets[:, 1], 0) * grid.stride           # (T,)
    steps, cols = np.nonzero(probs[:, 1:] >= settings.score_threshold)    # proposals (step, class)
    proposals = [Segment(video_id, classes[c] if classes is not None else int(c), grid.clip(starts[t]),
                         grid.clip(ends[t]), float(probs[t, c + 1])) for t, c in zip(steps, cols)]
    return _finish(proposals, settings, use_nms=True)


def merge_steps(probs: np.ndarray, grid: StepGrid, settings: DecodeSettings, video_id: str,
                classes: Sequence[Hashable] | None = None) -> list[Segment]:
    """The gestures of one sequence from per-step class-or-background probabilities (T, C + 1) alone:
    each run of consecutive steps with the same arg-max class becomes one gesture from the first
    step's centre - stride / 2 to the last's centre + stride / 2, scored by the run's mean probability
    of that class (kept when it reaches `score_threshold`)."""
    probs = np.asarray(probs, dtype=np.float64)
    best = probs.argmax(axis=1)                                           # (T,) 0 = background
    centres = grid.centres(len(best))                                     # (T,)
    proposals, t = [], 0
    while t < len(best):
        run_end = t
        while run_end + 1 < len(best) and best[run_end + 1] == best[t]:
            run_end += 1
        if best[t] > 0:
            score = float(probs[t:run_end + 1, best[t]].mean())
            if score >= settings.score_threshold:
                c = int(best[t]) - 1
                proposals.append(Segment(video_id, classes[c] if classes is not None else c,
                                         grid.clip(centres[t] - grid.stride / 2),
                                         grid.clip(centres[run_end] + grid.stride / 2), score))
        t = run_end + 1
    return _finish(proposals, settings, use_nms=False)
