"""Which frames of a video to decode: seek to the keyframe before each unit, or stream it once.

Decoding H.264 can only start at a keyframe. Reading a unit by seeking costs the frames from the
keyframe before it up to its last frame; streaming costs every frame up to the last one needed.
The plan picks whichever decodes fewer frames, from the units' frame ranges and the stream's
keyframe positions (not a fixed rule): units covering little of a long video are sought, units
tiling it are streamed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DecodePlan:
    mode: str  # 'seek' (one segment per run of nearby units) or 'stream' (one segment from frame 0)
    segments: tuple[tuple[int, int], ...]  # (first, last) frame decoded, ascending and disjoint
    seek_cost: int  # frames decoded when seeking: per unit, from the keyframe before it to its end
    stream_cost: int  # frames decoded when streaming: frame 0 to the last frame any unit needs

    @property
    def frames_to_decode(self) -> int:
        return sum(last - first + 1 for first, last in self.segments)


def preceding_keyframe(keyframes: np.ndarray, index: int) -> int:
    """The last keyframe at or before `index` (0 when the stream starts without one)."""
    at = int(np.searchsorted(keyframes, index, side="right")) - 1
    return int(keyframes[at]) if at >= 0 else 0


def plan_decode(ranges: list[tuple[int, int]], keyframes: np.ndarray, force: str | None = None) -> DecodePlan:
    """Plan the decode of units needing frames `ranges` [(first, last)] given sorted `keyframes`.

    Seek segments run from each unit's preceding keyframe to its last frame; overlapping or
    touching segments merge (a frame is decoded once), so for disjoint units the seek cost is
    sum over units of (end - preceding keyframe + 1). `force` ('seek'/'stream') overrides the
    choice (tests, benchmarks)."""
    if not ranges:
        return DecodePlan("seek", (), 0, 0)
    keyframes = np.asarray(sorted(keyframes), dtype=np.int64)
    spans = sorted((preceding_keyframe(keyframes, first), last) for first, last in ranges)
    merged: list[list[int]] = [list(spans[0])]
    for first, last in spans[1:]:
        if first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    seek = tuple((a, b) for a, b in merged)
    seek_cost = sum(b - a + 1 for a, b in seek)
    stream_cost = max(last for _, last in ranges) + 1
    mode = force or ("stream" if stream_cost <= seek_cost else "seek")
    if mode not in ("seek", "stream"):
        raise ValueError(f"decode mode must be seek or stream, not {mode!r}")
    segments = seek if mode == "seek" else ((0, stream_cost - 1),)
    return DecodePlan(mode, segments, seek_cost, stream_cost)
