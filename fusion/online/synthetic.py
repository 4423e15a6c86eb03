"""Synthetic long sequences of window tokens with planted gestures, and the small training loop the
tests and `benchmarks/online_head.py` use to show a detector learns them (a run's own training is
`fusion/fitting.py`).

A sequence is `steps` windows on a `StepGrid`; each window token is Gaussian noise plus, for every
planted gesture, `signal` times its class prototype scaled by the share of the window the gesture
covers: windows half over a gesture carry half its signal, as real dense windows do. Gestures do not
overlap, are 24 to 96 frames long and are separated by background.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from .segments import StepGrid, encode_targets


@dataclass
class SyntheticSequence:
    """One synthetic sequence: tokens (T, D) float32 and its gestures (class, start frame, end frame)."""

    video_id: str
    tokens: np.ndarray
    gestures: list[tuple[int, int, int]]


def synthetic_sequences(count: int, num_classes: int = 4, dim: int = 32, steps: tuple[int, int] = (60, 120),
                        grid: StepGrid = StepGrid(), signal: float = 1.5, seed: int = 0,
                        prefix: str = "seq") -> list[SyntheticSequence]:
    """`count` sequences; the class prototypes depend on `seed` only through `seed // 1000`, so train
    and held-out sets drawn with seeds 0 and 1 share them."""
    prototypes = np.random.default_rng(seed // 1000).standard_normal((num_classes, dim))
    prototypes /= np.linalg.norm(prototypes, axis=1, keepdims=True) / np.sqrt(dim) * 2
    rng = np.random.default_rng(seed + 1)
    out = []
    for k in range(count):
        num_steps = int(rng.integers(steps[0], steps[1] + 1))
        last = grid.first_frame + (num_steps - 1) * grid.stride + grid.window - 1
        gestures, frame = [], grid.first_frame + int(rng.integers(8, 64))
        while True:
            length = int(rng.integers(24, 97))
            if frame + length > last:
                break
            gestures.append((int(rng.integers(num_classes)), frame, frame + length - 1))
            frame += length + int(rng.integers(24, 128))
        starts = grid.first_frame + np.arange(num_steps) * grid.stride              # (T,)
        tokens = rng.standard_normal((num_steps, dim))                               # (T, D)
        for cls, start, end in gestures:
            covered = np.clip(np.minimum(starts + grid.window - 1, end) - np.maximum(starts, start) + 1, 0, None)
            tokens += signal * (covered / grid.window)[:, None] * prototypes[cls]   # (T, D)
        out.append(SyntheticSequence(f"{prefix}{k:03d}", tokens.astype(np.float32), gestures))
    return out


def pad_batch(sequences: list[SyntheticSequence], grid: StepGrid, stream: str = "tokens") -> dict[str, torch.Tensor]:
    """A padded batch {stream: (B, T, D), 'mask': (B, T), 'labels': (B, T), 'offsets': (B, T, 2)}."""
    longest, dim = max(len(s.tokens) for s in sequences), sequences[0].tokens.shape[1]
    tokens = torch.zeros(len(sequences), longest, dim)                              # (B, T, D)
    mask = torch.zeros(len(sequences), longest, dtype=torch.bool)                   # (B, T)
    labels = torch.zeros(len(sequences), longest, dtype=torch.long)                 # (B, T)
    offsets = torch.zeros(len(sequences), longest, 2)                               # (B, T, 2)
    for b, s in enumerate(sequences):
        n = len(s.tokens)
        step_labels, step_offsets = encode_targets(s.gestures, n, grid)
        tokens[b, :n], mask[b, :n] = torch.from_numpy(s.tokens), True
        labels[b, :n], offsets[b, :n] = torch.from_numpy(step_labels), torch.from_numpy(step_offsets)
    return {stream: tokens, "mask": mask, "labels": labels, "offsets": offsets}


def fit(head: torch.nn.Module, sequences: list[SyntheticSequence], grid: StepGrid, epochs: int = 30,
        batch_size: int = 8, lr: float = 5e-3, seed: int = 0, stream: str = "tokens") -> float:
    """Train `head` (a TemporalDetector reading `stream`) with AdamW; returns the seconds it took."""
    torch.manual_seed(seed)
    order = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.01)
    began = time.perf_counter()
    head.train()
    for _ in range(epochs):
        shuffled = order.permutation(len(sequences))
        for first in range(0, len(sequences), batch_size):
            batch = pad_batch([sequences[i] for i in shuffled[first:first + batch_size]], grid, stream)
            loss = head.loss(head(batch), batch["labels"], batch["offsets"], batch["mask"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    head.eval()
    return time.perf_counter() - began


@torch.no_grad()
def predict(head: torch.nn.Module, sequence: SyntheticSequence, stream: str = "tokens") -> tuple[np.ndarray, np.ndarray]:
    """Per-step probabilities (T, C + 1) and offsets (T, 2) of one sequence."""
    head.eval()
    out = head({stream: torch.from_numpy(sequence.tokens)[None]})
    return out.logits[0].softmax(-1).numpy(), out.offsets[0].numpy()
