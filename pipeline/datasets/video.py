"""Decoding only the frames a unit needs, with PyAV."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np


class VideoError(ValueError):
    """A video that cannot be decoded; the message names the file."""


@dataclass(frozen=True)
class VideoInfo:
    frames: int
    fps: float
    width: int
    height: int


def probe(path: Path) -> VideoInfo:
    """Frame count, rate and size; counts frames by demuxing when the header has no count."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            frames = stream.frames
            if not frames:
                frames = sum(1 for p in container.demux(stream) if p.size)
            return VideoInfo(int(frames), float(stream.average_rate or 0),
                             stream.codec_context.width, stream.codec_context.height)
    except (av.FFmpegError, IndexError, OSError) as exc:
        raise VideoError(f"{path}: cannot open video ({exc})") from None


def read_frames(path: Path, indices: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """Frames at the sorted-or-not `indices` as (N, H, W, 3) uint8 RGB, resized to `size` (w, h)
    by the decoder's scaler when given. Decodes from the keyframe before the first index up to
    the last index, and converts only the wanted frames."""
    indices = np.asarray(indices, dtype=np.int64)
    wanted = np.unique(indices)
    out: dict[int, np.ndarray] = {}
    width, height = size if size else (None, None)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.guessed_rate
            first = int(wanted[0])
            if first > 0 and rate and stream.time_base:
                container.seek(int(first / rate / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                index = _frame_index(frame, rate, stream.time_base)
                if index > wanted[-1]:
                    break
                if index in out or index not in wanted:
                    continue
                out[index] = frame.to_ndarray(format="rgb24", width=width, height=height)
    except av.FFmpegError as exc:
        raise VideoError(f"{path}: decoding failed ({exc})") from None
    missing = [int(i) for i in wanted if int(i) not in out]
    if missing:
        raise VideoError(f"{path}: frames {missing[:5]} are past the end or undecodable")
    return np.stack([out[int(i)] for i in indices])


def _frame_index(frame: av.VideoFrame, rate: object, time_base: object) -> int:
    if frame.pts is None or not rate or not time_base:
        return int(frame.index)
    return int(round(float(frame.pts * time_base * rate)))
