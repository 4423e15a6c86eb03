"""What `migue extract` can be told, and what one run reports."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migue.cache.units import DENSE_KIND


@dataclass
class ExtractOptions:
    """Everything `migue extract` can be told; None means the modality's default."""

    modality: str
    arch: str = "small"
    frames: int | None = None
    size: int | None = None
    layout: str = "imigue22"
    batch_size: int | None = None  # None: auto (see batching.resolve_batch_size)
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 autocast on CUDA, float32 on CPU
    checkpoints: tuple[str, ...] = ()
    trust_checkpoint: bool = False
    strict_checkpoint: bool = True  # False: load what fits, warn, leave the rest random
    workers: int = 2
    shard_size: int = 64
    seed: int = 0  # seeds the random weights when no checkpoint is given
    unit_kind: str | None = None  # the units to cover; None: the modality row's own kind
    dense_window: int = 32  # dense units: frames per window over whole sequences (entry key)
    dense_stride: int = 8  # dense units: frames between window starts (entry key)


@dataclass
class ExtractReport:
    entry: Path
    done_before: int
    extracted: int
    failures: dict[str, str] = field(default_factory=dict)
    random_weights: bool = False
    changed: dict[str, str] = field(default_factory=dict)  # unit id -> which inputs changed (retired, recomputed)
    fingerprinted_bytes: int = 0  # input bytes hashed this run (0 when every file was in the memo)
    decode: Any = None  # video modalities: the pass's DecodeTotals (videos, frames decoded)
    batch_size: int | None = None  # as resolved (auto or given)


def dense_grid(config: Mapping[str, Any]) -> tuple[int, int] | None:
    """(window, stride) of an entry of dense windows (its config's `dense`), else None: what the
    manifest must be read with (`read_dataset(dense=...)`) to hold the entry's units."""
    grid = config.get("dense") if config.get("unit_kind") == DENSE_KIND else None
    return (int(grid["window"]), int(grid["stride"])) if grid else None
