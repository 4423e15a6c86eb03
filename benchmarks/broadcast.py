"""Generated footage made as hard to decode as broadcast 720p H.264, and its bare decode rate.

The synthetic sample's flat drawings compress to almost nothing and decode at thousands of
frames per second; real press-conference footage has texture, grain and camera noise. This
re-encodes each video with a fixed texture panning across the frame plus fresh per-frame noise,
with libx264's usual tools (CABAC, B-frames, GOP 250), so its bitrate and decode rate resemble
real footage. The drawn figure stays where it was: skeletons and labels keep matching.
"""
from __future__ import annotations

import time
from pathlib import Path

import av
import numpy as np

TEXTURE = 28  # amplitude of the panning texture (grey levels)
GRAIN = 6  # standard deviation of the per-frame noise (grey levels)


def roughen(path: Path, seed: int = 0, gop: int = 250, crf: int = 26, preset: str = "superfast") -> None:
    """Re-encode `path` in place with texture and grain added, keyframes every `gop` frames."""
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".rough.mp4")
    with av.open(str(path)) as src, av.open(str(tmp), "w", format="mp4") as dst:
        ins = src.streams.video[0]
        w, h = ins.codec_context.width, ins.codec_context.height
        texture = rng.normal(0, TEXTURE, (h + 64, w + 64, 1)).astype(np.float32)
        texture = (texture + np.roll(texture, 1, 0) + np.roll(texture, 1, 1)) / 2  # fine, not pixel-white
        grain = rng.normal(0, GRAIN, (7, h + 7, w + 7, 1)).astype(np.float32)  # a bank, shifted per frame
        out = dst.add_stream("libx264", rate=ins.average_rate or 25)
        out.width, out.height, out.pix_fmt = w, h, "yuv420p"
        out.options = {"crf": str(crf), "preset": preset, "g": str(gop), "keyint_min": "25"}
        for i, frame in enumerate(src.decode(ins)):
            image = frame.to_ndarray(format="rgb24").astype(np.float32)
            dx, dy = i % 64, (i // 2) % 64  # a slow pan
            g = i % 5
            image += texture[dy:dy + h, dx:dx + w] + grain[i % 7, g:g + h, (i * 3) % 7:(i * 3) % 7 + w]
            rough = np.clip(image, 0, 255).astype(np.uint8)
            dst.mux(out.encode(av.VideoFrame.from_ndarray(rough, format="rgb24")))
        dst.mux(out.encode())
    tmp.replace(path)


def bitrate_mbps(paths: list[Path]) -> float:
    """Mean video bitrate over the files (bytes on disk / duration)."""
    total_bits, total_s = 0.0, 0.0
    for path in paths:
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            total_s += float(stream.frames / (stream.average_rate or 25))
        total_bits += path.stat().st_size * 8
    return total_bits / max(total_s, 1e-9) / 1e6


def bare_decode_fps(paths: list[Path]) -> tuple[float, int]:
    """Frames per second of PyAV decoding every frame (threading on, no conversion), one process."""
    frames, t = 0, time.perf_counter()
    for path in paths:
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            stream.thread_type = "AUTO"
            for _ in c.decode(stream):
                frames += 1
    return frames / (time.perf_counter() - t), frames
