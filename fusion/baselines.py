"""Baselines: single-stream probes, late (score-averaging) fusion, and concat fusion.

Every baseline reads pooled features (config `baseline_pool`): by default each stream is
averaged over time and its per-place tokens (rgb h x w cells, pose joints) concatenated, so a
probe still sees *where* a hand is; `mean` averages everything into one token. For emotion
the per-window features are then averaged over a video's real windows. Outputs follow the task: (B, num_classes) logits
for micro-gestures, (B,) logits for emotion (num_outputs == 1).
"""
from __future__ import annotations

import torch
from torch import nn

from .layers import init_weights

PROBES = ("linear", "mlp")


def pooled(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Tokens concatenated, then averaged over real windows:
    (B, L, D) or (B, W, L, D) with mask (B, W) -> (B, L * D)."""
    x = x.flatten(-2)                                         # (B, L*D) or (B, W, L*D)
    if x.dim() == 3:
        m = mask.unsqueeze(-1).to(x.dtype)                    # (B, W, 1)
        x = (x * m).sum(dim=1) / m.sum(dim=1).clamp_min(1)    # (B, L*D)
    return x


def _classifier(dim: int, num_outputs: int, kind: str, hidden: int, dropout: float) -> nn.Sequential:
    if kind not in PROBES:
        raise ValueError(f"probe kind {kind!r}: expected one of {PROBES}")
    if kind == "linear":
        return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, num_outputs))
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(hidden, num_outputs))


def _squeeze(logits: torch.Tensor) -> torch.Tensor:
    """(B, 1) -> (B,) for the binary task; (B, C) unchanged."""
    return logits.squeeze(-1) if logits.shape[-1] == 1 else logits


class Probe(nn.Module):
    """A linear or MLP classifier over one pooled input stream of `dim` = L * D features."""

    def __init__(self, name: str, dim: int, num_outputs: int, kind: str = "linear",
                 hidden: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        self.name = name
        self.net = _classifier(dim, num_outputs, kind, hidden, dropout)
        self.apply(init_weights)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        z = pooled(batch[self.name], batch.get("mask"))       # (B, L*D)
        return _squeeze(self.net(z))                          # (B, C) or (B,)


class Late(nn.Module):
    """Late fusion: the average of the member probes' softmax (or sigmoid) scores.

    Each member is trained on its own loss (`train_logits`); the output is the log of the
    averaged probabilities (multi-class) or its logit (binary), so it stays a logit."""

    def __init__(self, members: list[Probe]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def train_logits(self, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        return [m(batch) for m in self.members]

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = torch.stack(self.train_logits(batch)).float()    # (M, B, C) or (M, B)
        if logits.dim() == 2:
            return torch.logit(torch.sigmoid(logits).mean(0), eps=1e-6)   # (B,)
        return torch.softmax(logits, dim=-1).mean(0).log()                # (B, C)


class Concat(nn.Module):
    """Concatenated pooled features of several streams (each layer-normed; `dims` = L * D each) -> MLP."""

    def __init__(self, dims: dict[str, int], num_outputs: int, hidden: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        self.names = list(dims)
        self.norms = nn.ModuleDict({n: nn.LayerNorm(d) for n, d in dims.items()})
        total = sum(dims.values())
        self.net = nn.Sequential(nn.Linear(total, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, num_outputs))
        self.apply(init_weights)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        z = torch.cat([self.norms[n](pooled(batch[n], batch.get("mask"))) for n in self.names], dim=-1)  # (B, sum L*D)
        return _squeeze(self.net(z))                                                                   # (B, C) or (B,)
