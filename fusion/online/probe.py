"""`window-probe`: the probe baseline of the online task as a head a run trains (`--fusion window-probe`).

Each window token alone goes through a linear classifier of class-or-background on standardised
features (a LayerNorm without learnt scale: each token centred and scaled), trained with
cross-entropy only; runs of consecutive windows of one arg-max class are merged into gestures
(`segments.merge_steps`, `decoder = "merge"`). It is the trained-in-the-run counterpart of
`baseline.WindowProbe` (scikit-learn's logistic regression over the same tokens); no temporal context,
no boundary regression: what the detection head `detect` must beat.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..detection import Detections
from ..registry import register_head, view


class WindowProbeHead(nn.Module):
    """batch {<stream>: (B, T, D_s) ..., 'mask': (B, T)} -> Detections((B, T, C + 1), zero offsets (B, T, 2))."""

    decoder = "merge"  # gestures from runs of one arg-max class, not from boundary offsets

    def __init__(self, shapes: dict[str, tuple[int, int]], num_classes: int, streams: tuple[str, ...]) -> None:
        super().__init__()
        missing = [s for s in streams if s not in shapes]
        if not streams or missing:
            raise ValueError(f"window-probe reads streams {list(streams)}; the inputs hold {list(shapes)}")
        self.streams = list(streams)
        self.norms = nn.ModuleDict({s: nn.LayerNorm(shapes[s][1], elementwise_affine=False) for s in self.streams})
        self.classify = nn.Linear(sum(shapes[s][1] for s in self.streams), num_classes + 1)

    def forward(self, batch: dict[str, torch.Tensor]) -> Detections:
        x = torch.cat([self.norms[s](batch[s].float()) for s in self.streams], dim=-1)  # (B, T, sum D)
        logits = self.classify(x)                                                     # (B, T, C+1)
        return Detections(logits, torch.zeros(*logits.shape[:2], 2, device=logits.device))  # (B, T, 2)

    def loss(self, out: Detections, labels: torch.Tensor, offsets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of class-or-background on every real window (offsets are not learnt)."""
        return F.cross_entropy(out.logits[mask], labels[mask])


def _inputs(task: str, cfg: dict[str, Any]) -> dict[str, Any]:
    return {s: view(s, cfg, "mean") for s in cfg["streams"]}


@register_head("window-probe", tasks=("online",), inputs=_inputs,
               settings={"streams": ["joint", "bone"]},  # as detect: ["rgb"] rgb-only, all three fused
               description="probe baseline: a linear class-or-background classifier per window, runs merged")
def window_probe(shapes: dict[str, tuple[int, int]], num_classes: int, streams: list[str]) -> WindowProbeHead:
    return WindowProbeHead(shapes, num_classes, tuple(streams))
