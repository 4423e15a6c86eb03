"""The extractor contract: a frozen backbone that turns a batch of decoded inputs into tokens.

Every extractor takes a uint8 or float tensor batch in the layout its spec names and
returns a dict of streams, each (B, L, D). Preprocessing that belongs to the model
(normalisation, channel order) happens inside, so the cache key can name it.
"""
from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class StreamSpec:
    """One output stream: L tokens of width D, laid out on `grid` (product = L)."""

    tokens: int
    dim: int
    grid: tuple[int, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class ExtractorSpec:
    """What an extractor eats and emits; `config` is everything that shapes its numbers."""

    name: str
    input_layout: str  # e.g. "B T H W C uint8", "B T V C float32"
    streams: dict[str, StreamSpec]
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["streams"] = {k: {**asdict(v), "grid": list(v.grid)} for k, v in self.streams.items()}
        return d


class Extractor(nn.Module, abc.ABC):
    """Base class: a frozen backbone in eval mode with a uniform forward contract."""

    spec: ExtractorSpec

    @abc.abstractmethod
    def forward(self, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, ...) decoded inputs -> {stream: (B, L, D)}."""

    @abc.abstractmethod
    def load_checkpoint(self, path: str, trust: bool = False, strict: bool = True) -> Any:
        """Load released weights strictly; a key or shape that does not fit is an error
        (`strict=False`: load what fits, warn naming the rest). Returns a LoadReport (or a list)."""

    def freeze(self) -> "Extractor":
        """Eval mode, no gradients: features are frozen."""
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self
