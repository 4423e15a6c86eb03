"""Baselines: single-stream probes, late (score-averaging) fusion, and concat fusion.

Every baseline reads pooled features (config `baseline_pool`): by default each stream is
averaged over time and its per-place tokens (rgb h x w cells, pose joints) concatenated, so a
probe still sees *where* a hand is; `mean` averages everything into one token. For a task of
videos (emotion) the per-window features are then averaged over a video's real windows. Outputs
follow the task: (B, num_classes) logits, (B,) for a binary one (num_outputs == 1). Baselines fit
every classifying task (clips or videos, built-in or plugin) that has the streams they read.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from migue.cache.streams import Stream, on_stream

from .data import Input
from .layers import init_weights
from .registry import register_head, view
from .tasks import Task, get_task

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


# ---- registration: every baseline reads its inputs pooled by its `baseline_pool` setting
BASELINE_POOL = {"baseline_pool": "space"}  # space (mean over time, per-place features concatenated:
                                            # rgb h*w cells, pose joints) | time | mean (one vector)
POOL_CHOICES = {"baseline_pool": ("space", "time", "mean")}
MLP = {"width": 256, "dropout": 0.1}  # hidden size and dropout of mlp probes and concat
MLP_RANGES = {"width": (1, None), "dropout": (0, 1)}


def _classifies(task: Task, streams: tuple[str, ...] = ()) -> bool:
    """A baseline fits a task that classifies items (not sequences) and has the `streams` it reads."""
    return task.items != "sequence" and all(s in task.streams for s in streams)


def _task_streams(task: str) -> list[str]:
    """Every stream of the task (late and concat fuse them all)."""
    return list(get_task(task).streams)


def _pooled_inputs(members: Callable[[str], list[str]]) -> Callable[[str, dict[str, Any]], dict[str, Input]]:
    return lambda task, cfg: {m: view(m, cfg, cfg["baseline_pool"]) for m in members(task)}


def _flat(shape: tuple[int, int]) -> int:
    """Features a baseline sees per unit: all L pooled tokens of D, concatenated."""
    return shape[0] * shape[1]


def _probe_fits(stream: Stream) -> Callable[[Task], bool]:
    """A probe fits the classifying tasks that name its stream; a plugin modality's stream (which no
    built-in task names) fits every classifying task: select_entries then finds its entry."""
    if stream.source == "built-in":
        return lambda task: _classifies(task, (stream.name,))
    return lambda task: _classifies(task)


def _register_probes(stream: Stream) -> None:
    """probe-linear-<stream> and probe-mlp-<stream> for one stream of the table (`migue.cache.streams`):
    called for every built-in stream at import, and for a plugin modality's when it registers."""
    name, target = stream.name, stream.probe_name
    for kind in PROBES:
        def probe(shapes: dict[str, tuple[int, int]], num_classes: int, baseline_pool: str, width: int = 256,
                  dropout: float = 0.1, kind: str = kind) -> Probe:
            return Probe(name, _flat(shapes[name]), num_classes, kind, width, dropout)

        settings = {**BASELINE_POOL, **(MLP if kind == "mlp" else {})}
        register_head(f"probe-{kind}-{target}", tasks=_probe_fits(stream),
                      inputs=_pooled_inputs(lambda task: [name]), settings=settings, choices=POOL_CHOICES,
                      ranges=MLP_RANGES if kind == "mlp" else None, source=stream.source,
                      description=f"{kind} probe on pooled {target} features (per item; a video's windows "
                                  "averaged)")(probe)


def _register_late(head: str, members: Callable[[str], list[str]], fits: Callable[[Task], bool],
                   description: str) -> None:
    def late(shapes: dict[str, tuple[int, int]], num_classes: int, baseline_pool: str, late_probe: str,
             width: int, dropout: float) -> Late:
        return Late([Probe(m, _flat(shapes[m]), num_classes, late_probe, width, dropout) for m in shapes])

    register_head(head, tasks=fits, inputs=_pooled_inputs(members),
                  settings={**BASELINE_POOL, "late_probe": "linear", **MLP},  # member probes: linear | mlp
                  choices={**POOL_CHOICES, "late_probe": PROBES}, ranges=MLP_RANGES, description=description,
                  trains_members=True)(late)


def concat(shapes: dict[str, tuple[int, int]], num_classes: int, baseline_pool: str, width: int,
           dropout: float) -> Concat:
    return Concat({n: _flat(s) for n, s in shapes.items()}, num_classes, width, dropout)


_register_late("late", _task_streams, _classifies, "late fusion: average of per-stream probe scores over "
                                                    "the task's streams (mg: rgb, joint, bone; emotion: face, context)")
_register_late("late-pose", lambda task: ["joint", "bone"], lambda task: _classifies(task, ("joint", "bone")),
               "classic 2s-AGCN ensemble: average of joint and bone probe scores")
register_head("concat", tasks=_classifies, inputs=_pooled_inputs(_task_streams),
              settings={**BASELINE_POOL, **MLP}, choices=POOL_CHOICES, ranges=MLP_RANGES,
              description="concatenated pooled features of all modalities -> MLP")(concat)
on_stream(_register_probes)  # every stream a modality row declares, built-in or plugin, gets its probes
