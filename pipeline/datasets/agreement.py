"""Does a skeleton fit its video? Pose is normalised by the video's frame size and clips are placed
by frame number, so a skeleton made at another resolution or frame rate gives wrong inputs
without any error: `migue data check` reports it (what the skeleton holds against what the
video's stream header says)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .video import VideoInfo

SLACK = 0.02          # OpenPose may place a point slightly past the frame's edge
SLACK_PX = 2.0
FRAME_SLACK = 0.05    # frame counts may differ by a few frames at the end (of both: at least 3)
FRAME_SLACK_MIN = 3


def disagreement(skeleton: Path, keypoints: np.ndarray, video: Path, info: VideoInfo) -> list[str]:
    """Sentences naming how `keypoints` (T, 137, 3, pixels) contradict `video`'s size or frame
    count; empty when they fit (or when nothing was detected, as in an empty skeleton)."""
    seen = keypoints[..., 2] > 0
    if not seen.any() or info.width <= 1 or info.height <= 1:
        return []
    xs, ys = keypoints[..., 0][seen], keypoints[..., 1][seen]
    out = []
    if xs.max() <= 1.0 and ys.max() <= 1.0:
        out.append(f"{skeleton}: coordinates within [0, 1] (normalised), but {video} is {info.width}x{info.height} "
                   "pixels: the skeleton's coordinate space is not the video's")
    elif _outside(xs, info.width) or _outside(ys, info.height):
        out.append(f"{skeleton}: keypoints reach x {xs.min():.0f}..{xs.max():.0f}, y {ys.min():.0f}..{ys.max():.0f}, "
                   f"outside the {info.width}x{info.height} frames of {video}: the skeleton was made at another "
                   "resolution (pose is normalised by the video's size)")
    frames, n = info.frames, len(keypoints)
    if frames > 0 and abs(n - frames) > max(FRAME_SLACK_MIN, FRAME_SLACK * frames):
        out.append(f"{skeleton}: {n} frames, but {video} has {frames} ({info.fps:g} fps): the skeleton was made "
                   f"at another frame rate or from another cut (ratio {n / frames:.2f}; clips are placed by frame "
                   "number)")
    return out


def _outside(values: np.ndarray, extent: int) -> bool:
    slack = SLACK * extent + SLACK_PX
    return bool(values.min() < -slack or values.max() > extent - 1 + slack)
