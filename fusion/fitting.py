"""Fitting one head (or many in one pass): optimiser, schedule, loss, sampler, evaluation.

The caller owns the batches: `Fitter` takes one optimiser step per batch and keeps the best-on-val
state; `evaluate_heads` scores heads on a split with one read of its batches. Run folders,
resume and prediction are `runs.py`.
"""
from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .data import FusionData, SplitData, iter_batches
from .metrics import task_metrics
from .registry import get_head, num_outputs
from .tasks import TaskNotReadyError, get_task

log = logging.getLogger("migue.fusion.train")

__all__ = ["Fitter", "check_labels", "epoch_order", "evaluate_head", "evaluate_heads", "head_logits",
           "seed_everything", "to_device", "training_setup", "wire_dtype"]


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Fitter:
    """One head's optimisation: AdamW + warm-up/cosine, its loss, early stopping on val and
    the best-on-val state. The caller owns the batches (one loop can drive many fitters)."""

    def __init__(self, task: str, head: nn.Module, cfg: dict[str, Any], train_labels: np.ndarray,
                 steps_per_epoch: int, has_val: bool, device: torch.device) -> None:
        self.task, self.head, self.cfg, self.has_val, self.device = task, head, cfg, has_val, device
        self.spec = get_head(cfg["head"], task)
        warmup, total = round(cfg["warmup_epochs"] * steps_per_epoch), cfg["epochs"] * steps_per_epoch
        decay = [p for p in head.parameters() if p.dim() >= 2]
        no_decay = [p for p in head.parameters() if p.dim() < 2]
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg["weight_decay"]},
                                            {"params": no_decay, "weight_decay": 0.0}], lr=cfg["lr"])
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer,
                                                          lambda step: _lr_factor(step, warmup, total))
        self.criterion = _criterion(task, cfg, train_labels, device)
        self.rows: list[dict[str, Any]] = []
        self.best_score: tuple[float, float] = (-math.inf, -math.inf)
        self.best_state: dict[str, torch.Tensor] = {}
        self.best_epoch, self.stale, self.stopped = 0, 0, False
        self._loss_sum, self._seen, self._started = 0.0, 0, time.perf_counter()

    def step(self, batch: dict[str, torch.Tensor]) -> None:
        """One optimiser step on a batch already on the device."""
        self.head.train()
        with _autocast(self.device, self.cfg["amp"]):
            terms = self.spec.loss_terms(self.head, batch)
            loss = sum(self.criterion(logits.float(), batch["label"]) for logits in terms)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg["grad_clip"]:
            nn.utils.clip_grad_norm_(self.head.parameters(), self.cfg["grad_clip"])
        self.optimizer.step()
        self.schedule.step()
        self._loss_sum += loss.item() * len(batch["label"])
        self._seen += len(batch["label"])

    def end_epoch(self, epoch: int, val: dict[str, Any] | None) -> bool:
        """Record the epoch (val: its val metrics, None without val); True when training should stop."""
        row = {"epoch": epoch, "train_loss": self._loss_sum / max(self._seen, 1),
               "lr": self.optimizer.param_groups[0]["lr"]}
        score = (float(epoch), 0.0)  # without val: the latest epoch is the best
        if self.has_val and val is not None:
            row.update({f"val_{k}": val[k] for k in ("loss", *get_task(self.task).metrics)})
            monitored = row[f"val_{self.cfg['monitor']}"]
            score = (-math.inf if math.isnan(monitored) else monitored, -row["val_loss"])
        row["seconds"] = time.perf_counter() - self._started
        self.rows.append(row)
        self.stale += 1
        if score > self.best_score:
            self.best_score, self.best_epoch, self.stale = score, epoch, 0
            self.best_state = {k: v.detach().cpu().clone() for k, v in self.head.state_dict().items()}
        log.debug("%s epoch %d/%d  %s%s", self.cfg["head"], epoch, self.cfg["epochs"],
                  "  ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"),
                  "  *" if self.best_epoch == epoch else "")
        self.stopped = bool(self.has_val and self.cfg["patience"] and self.stale >= self.cfg["patience"])
        if self.stopped:
            log.info("%s: early stop, no better val %s for %d epochs", self.cfg["head"], self.cfg["monitor"],
                     self.stale)
        self._loss_sum, self._seen, self._started = 0.0, 0, time.perf_counter()
        return self.stopped

    def history(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def state(self) -> dict[str, Any]:
        """Everything the next epoch depends on, as plain values and tensors (weights_only loads it)."""
        return {"head": self.head.state_dict(), "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(), "history": _plain(self.rows),
                "best_state": self.best_state, "best_epoch": self.best_epoch,
                "best_score": _plain(list(self.best_score)), "stale": self.stale, "stopped": self.stopped}

    def load_state(self, state: dict[str, Any]) -> None:
        self.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.rows, self.best_state, self.best_epoch = state["history"], state["best_state"], state["best_epoch"]
        self.best_score, self.stale, self.stopped = tuple(state["best_score"]), state["stale"], state["stopped"]


def training_setup(data: FusionData, cfg: dict[str, Any]) -> tuple[np.ndarray, int, bool]:
    """(labelled train items, optimiser steps per epoch, whether val has labels)."""
    items = np.flatnonzero(data.splits["train"].labels >= 0)
    has_val = bool((data.splits["val"].labels >= 0).any())
    if not has_val:
        log.warning("no labelled val items: no early stopping, the last epoch is kept")
    return items, math.ceil(len(items) / cfg["batch_size"]), has_val


def _lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay to 0 at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def epoch_order(rng: np.random.Generator, items: np.ndarray, labels: np.ndarray, balance: str) -> np.ndarray:
    """A shuffled epoch, or (balance='sampler') one drawn with replacement at equal class odds."""
    if balance != "sampler":
        return rng.permutation(items)
    counts = np.bincount(labels[items])
    weights = 1.0 / counts[labels[items]]
    return rng.choice(items, size=len(items), replace=True, p=weights / weights.sum())


def _criterion(task: str, cfg: dict[str, Any], labels: np.ndarray,
               device: torch.device) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The task's loss: cross-entropy over classes, or BCE on smoothed targets for a binary task;
    class-weighted if configured."""
    loss = get_task(task).loss
    if loss not in LOSSES:
        raise TaskNotReadyError(f"task {task!r}: its loss {loss!r} is trained by its own head's loop, not here")
    return LOSSES[loss](cfg, labels, device)


def _cross_entropy(cfg: dict[str, Any], labels: np.ndarray,
                   device: torch.device) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    weighted, smooth = cfg["class_balance"] == "weighted-loss", cfg["label_smoothing"]
    counts = np.bincount(labels, minlength=cfg["num_classes"]).clip(min=1)
    weight = torch.tensor(len(labels) / (len(counts) * counts), dtype=torch.float32, device=device)
    return lambda logits, y: F.cross_entropy(logits, y, weight=weight if weighted else None, label_smoothing=smooth)


def _binary_cross_entropy(cfg: dict[str, Any], labels: np.ndarray,
                          device: torch.device) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    weighted, smooth = cfg["class_balance"] == "weighted-loss", cfg["label_smoothing"]
    positives = labels.sum()
    pos_weight = torch.tensor((len(labels) - positives) / max(positives, 1), dtype=torch.float32, device=device)
    return lambda logits, y: F.binary_cross_entropy_with_logits(
        logits, y.float() * (1 - smooth) + 0.5 * smooth, pos_weight=pos_weight if weighted else None)


LOSSES = {"cross-entropy": _cross_entropy, "binary-cross-entropy": _binary_cross_entropy}  # Task.loss -> criterion


def evaluate_head(task: str, head: nn.Module, split: SplitData, cfg: dict[str, Any],
              device: torch.device) -> tuple[dict[str, Any], tuple[np.ndarray, np.ndarray]]:
    """Metrics of the labelled items of a split, and their (labels, logits)."""
    return evaluate_heads(task, {0: head}, split, {0: cfg}, device)[0]


def evaluate_heads(task: str, heads: Mapping[Any, nn.Module], split: SplitData, cfgs: Mapping[Any, dict[str, Any]],
                   device: torch.device, names: Sequence[str] | None = None
                   ) -> dict[Any, tuple[dict[str, Any], tuple[np.ndarray, np.ndarray]]]:
    """Metrics and (labels, logits) of each head on the labelled items of a split; the batches
    (of inputs `names`, None: all) are read once for all heads."""
    items = np.flatnonzero(split.labels >= 0)
    labels = split.labels[items]
    logits = head_logits(task, heads, split, items, cfgs, device, names)
    return {k: (task_metrics(task, labels, logits[k], cfgs[k]["num_classes"]), (labels, logits[k])) for k in heads}


@torch.inference_mode()
def head_logits(task: str, heads: Mapping[Any, nn.Module], split: SplitData, items: np.ndarray,
            cfgs: Mapping[Any, dict[str, Any]], device: torch.device,
            names: Sequence[str] | None = None) -> dict[Any, np.ndarray]:
    """Each head's logits for `items`, one pass over their batches."""
    lead = next(iter(cfgs.values()))
    binary = get_task(task).binary
    outs = {k: [torch.empty((0,) if binary else (0, num_outputs(task, cfgs[k])))] for k in heads}
    for head in heads.values():
        head.eval()
    for batch in iter_batches(split, items, lead["batch_size"], names, wire_dtype(device)):
        batch = to_device(batch, device)
        for k, head in heads.items():
            with _autocast(device, cfgs[k]["amp"]):
                outs[k].append(head(batch).float().cpu())
    return {k: torch.cat(parts).numpy() for k, parts in outs.items()}


def _autocast(device: torch.device, amp: bool) -> torch.autocast:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda")


def wire_dtype(device: torch.device) -> torch.dtype:
    """What batches travel as: the cache's float16 to a GPU (half the bytes), float32 on CPU."""
    return torch.float16 if device.type == "cuda" else torch.float32


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """The batch on `device`, token tensors widened to float32 there."""
    moved = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    return {k: v.float() if v.is_floating_point() else v for k, v in moved.items()}


def check_labels(task: str, data: FusionData, cfg: dict[str, Any]) -> None:
    if not (data.splits["train"].labels >= 0).any():
        raise ValueError(f"{task}: the train split has no labelled items")
    top = max(int(s.labels.max(initial=-1)) for s in data.splits.values())
    if top >= cfg["num_classes"]:
        raise ValueError(f"{task} label {top} out of range for num_classes={cfg['num_classes']}")


def _plain(obj: Any) -> Any:
    """numpy scalars as Python ones (NaN kept), so that weights_only loading accepts them."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj.item() if isinstance(obj, np.generic) else obj
