"""Timing of planted gestures, shared by every synthetic release (iMiGUE layouts and SMG):
where the clips fall in a long sequence and how a gesture rises and falls."""
from __future__ import annotations

import numpy as np

CLIP_LEN = (16, 40)  # inclusive range of clip lengths, in frames
MIN_GAP = 4  # rest frames before, between and after clips


def clip_spans(frames: int, n: int, rng: np.random.Generator, length: tuple[int, int] = CLIP_LEN,
                gap: int = MIN_GAP) -> list[tuple[int, int]]:
    """n non-overlapping (start, end) spans of `length` (inclusive range) frames, separated by at
    least `gap` rest frames."""
    longest = min(length[1], (frames - (n + 1) * gap) // n)
    lengths = rng.integers(length[0], longest + 1, size=n)
    spare = frames - int(lengths.sum()) - (n + 1) * gap
    gaps = gap + rng.multinomial(spare, np.full(n + 1, 1 / (n + 1)))
    starts = np.cumsum(gaps[:-1]) + np.concatenate([[0], np.cumsum(lengths[:-1])])
    return [(int(s), int(s + n_frames - 1)) for s, n_frames in zip(starts, lengths)]


def envelope(n: int) -> np.ndarray:
    """0 -> 1 -> 0 over a clip of n frames: smooth reach, hold, smooth return."""
    ramp = max(3, n // 5)
    i = np.arange(n, dtype=float)
    x = np.clip(np.minimum(i / ramp, (n - 1 - i) / ramp), 0, 1)
    return x * x * (3 - 2 * x)
