"""Train one head over cache entries and write a self-describing run folder; re-evaluate it later.

Run folder: config.json (resolved config, entries with paths, keys and configs), head.pt
(best-on-val state_dict + config; torch.load(weights_only=True)), metrics.json (test and
val metrics, chance levels), history.csv (one row per epoch run), confusion.png, curves.png,
checkpoint.pt (after every epoch, written atomically: head, optimizer, schedule, every RNG,
early-stopping state and history; `resume: True` continues from it to the very result an
uninterrupted run gives).
"""
from __future__ import annotations

import json
import logging
import math
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from migue.cache import EntryReader
from migue.cache.keys import project_version
from migue.common.files import atomic_writer

from .config import MONITORS, resolve_config
from .data import FusionData, SplitData, build_data, iter_batches
from .metrics import chance_levels, confusion, predictions, task_metrics
from .registry import get_head
from .reports import jsonable, plot_confusion, plot_curves, write_json, write_tensorboard

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
RUNTIME_KEYS = ("device", "in_memory", "memory_budget_gb")  # may differ on resume: same numbers


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; anything else as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def train_run(task: str, entries: Mapping[str, EntryReader], out_dir: Path,
              config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train head config['head'] for `task` ('mg' | 'emotion') on entries keyed by role
    (mg: rgb, pose; emotion: face, context); write the run folder; return its metrics.
    config['resume'] = True continues the run in `out_dir` from its last completed epoch."""
    config = dict(config or {})
    resume = bool(config.pop("resume", False))
    cfg = resolve_config(task, config)
    spec = get_head(cfg["head"], task)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg["seed"])
    data = _data(task, entries, cfg)
    _check_labels(task, data, cfg)
    device = pick_device(cfg["device"])
    head = spec.build(task, data.shapes, cfg).to(device)
    record = _record(task, cfg, head, data, entries, device)
    keys = {role: entry["key"] for role, entry in record["entries"].items()}
    state = _load_checkpoint(out_dir / CHECKPOINT, task, cfg, keys) if resume else None
    write_json(out_dir / "config.json", record)

    history, best_state, best_epoch = _fit(task, head, data, cfg, device, out_dir / CHECKPOINT, state,
                                           {"task": task, "config": cfg, "entries": keys})
    head.load_state_dict(best_state)
    results = {s: _evaluate(task, head, data.splits[s], cfg, device) for s in ("val", "test")}
    return write_results(out_dir, task, cfg, head, data, history, best_epoch, results)


def write_results(out_dir: Path, task: str, cfg: dict[str, Any], head: nn.Module, data: FusionData,
                  history: pd.DataFrame, best_epoch: int,
                  results: dict[str, tuple[dict[str, Any], tuple[np.ndarray, np.ndarray]]]) -> dict[str, Any]:
    """head.pt, metrics.json, history.csv, curves.png, TensorBoard events and confusion.png of
    a trained head (its best state loaded) from its val and test `results`; returns the metrics."""
    torch.save({"state_dict": {k: v.detach().cpu() for k, v in head.state_dict().items()}, "task": task,
                "head": cfg["head"], "config": cfg, "shapes": {n: list(s) for n, s in data.shapes.items()}},
               out_dir / "head.pt")
    train_labels = data.splits["train"].labels
    test = data.splits["test"]
    metrics = {
        "task": task, "head": cfg["head"], "monitor": cfg["monitor"],
        "best_epoch": best_epoch, "epochs_run": len(history),
        "test": results["test"][0], "val": results["val"][0],
        "chance": chance_levels(task, train_labels[train_labels >= 0], test.labels[test.labels >= 0],
                                cfg["num_classes"]),
    }
    write_json(out_dir / "metrics.json", metrics)
    history.to_csv(out_dir / "history.csv", index=False)
    plot_curves(history, out_dir / "curves.png", cfg["monitor"])
    write_tensorboard(history, out_dir / "tensorboard")
    shown = "test" if metrics["test"]["n"] else "val"
    labels, logits = results[shown][1]
    plot_confusion(confusion(task, labels, logits, cfg["num_classes"]), out_dir / "confusion.png",
                   f"{cfg['head']} {task}: {shown} confusion (epoch {best_epoch})")
    log.info("%s %s: test %s", task, cfg["head"], _summary(metrics["test"], task))
    return metrics


def evaluate_run(run_dir: Path, split: str = "test",
                 entries: Mapping[str, EntryReader] | None = None) -> dict[str, Any]:
    """Reload a run (its config, head.pt and entries, or `entries` by role) and recompute the
    metrics of `split`."""
    task, cfg, head, data, device = _load_run(Path(run_dir), split, entries)
    return _evaluate(task, head, data.splits[split], cfg, device)[0]


def predict_run(run_dir: Path, split: str = "test",
                entries: Mapping[str, EntryReader] | None = None) -> pd.DataFrame:
    """Predictions for every item of `split`, labelled or not: emotion (video_id, label 0/1),
    mg (unit_id, video_id, label = class index)."""
    task, cfg, head, data, device = _load_run(Path(run_dir), split, entries)
    part = data.splits[split]
    labels = predictions(task, _logits(task, {0: head}, part, np.arange(len(part)), {0: cfg}, device)[0])
    if task == "emotion":
        return pd.DataFrame({"video_id": part.ids, "label": labels})
    return pd.DataFrame({"unit_id": part.ids, "video_id": part.video_ids, "label": labels})


# ---- training ------------------------------------------------------------------------------
class Fitter:
    """One head's optimisation: AdamW + warm-up/cosine, its loss, early stopping on val and
    the best-on-val state. The caller owns the batches (one loop can drive many fitters)."""

    def __init__(self, task: str, head: nn.Module, cfg: dict[str, Any], train_labels: np.ndarray,
                 steps_per_epoch: int, has_val: bool, device: torch.device) -> None:
        self.task, self.head, self.cfg, self.has_val, self.device = task, head, cfg, has_val, device
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
            terms = self.head.train_logits(batch) if hasattr(self.head, "train_logits") else [self.head(batch)]
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
            row.update({f"val_{k}": val[k] for k in ("loss", *MONITORS[self.task])})
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


def _fit(task: str, head: nn.Module, data: FusionData, cfg: dict[str, Any], device: torch.device,
         checkpoint: Path | None = None, state: dict[str, Any] | None = None,
         identity: dict[str, Any] | None = None) -> tuple[pd.DataFrame, dict[str, torch.Tensor], int]:
    """Train `head`; returns the history, the best-on-val state and its epoch.
    After each epoch everything the next one depends on is saved to `checkpoint`; `state`
    (a loaded checkpoint) continues from there."""
    train = data.splits["train"]
    items, steps, has_val = training_setup(data, cfg)
    fitter = Fitter(task, head, cfg, train.labels[items], steps, has_val, device)
    rng = np.random.default_rng(cfg["seed"])
    first = 1
    if state is not None:
        fitter.load_state(state)
        _set_rng_states(state["rng"], rng)
        first = cfg["epochs"] + 1 if state["stopped"] else state["epoch"] + 1
        log.info("resuming %s from epoch %d", cfg["head"], state["epoch"])
    epochs = tqdm(range(first, cfg["epochs"] + 1), desc=cfg["head"], unit="epoch", leave=False,
                  disable=not sys.stderr.isatty())
    for epoch in epochs:
        order = _epoch_order(rng, items, train.labels, cfg["class_balance"])
        for batch in iter_batches(train, order, cfg["batch_size"], dtype=wire_dtype(device)):
            fitter.step(_to(batch, device))
        val = _evaluate(task, head, data.splits["val"], cfg, device)[0] if has_val else None
        stop = fitter.end_epoch(epoch, val)
        if checkpoint is not None:
            _save_checkpoint(checkpoint, {**(identity or {}), "epoch": epoch, **fitter.state(),
                                          "rng": _rng_states(rng)})
        if stop:
            break
    return fitter.history(), fitter.best_state, fitter.best_epoch


# ---- resume --------------------------------------------------------------------------------
def _rng_states(order: np.random.Generator) -> dict[str, Any]:
    """Every random state training draws from (tensors and plain values: weights_only loads them)."""
    legacy = np.random.get_state(legacy=False)
    legacy["state"] = {**legacy["state"], "key": torch.from_numpy(legacy["state"]["key"].astype(np.int64))}
    states = {"python": random.getstate(), "numpy": legacy, "torch": torch.get_rng_state(),
              "order": order.bit_generator.state}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any], order: np.random.Generator) -> None:
    random.setstate(states["python"])
    legacy = dict(states["numpy"])
    legacy["state"] = {**legacy["state"], "key": legacy["state"]["key"].numpy().astype(np.uint32)}
    np.random.set_state(legacy)
    torch.set_rng_state(states["torch"])
    order.bit_generator.state = states["order"]
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def _plain(obj: Any) -> Any:
    """numpy scalars as Python ones (NaN kept), so that weights_only loading accepts them."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj.item() if isinstance(obj, np.generic) else obj


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save atomically: a kill leaves the previous epoch's checkpoint."""
    with atomic_writer(path) as f:
        torch.save(state, f)


def _load_checkpoint(path: Path, task: str, cfg: dict[str, Any], keys: dict[str, str]) -> dict[str, Any] | None:
    """The run's last checkpoint, if it belongs to this very run (task, config, entries)."""
    if not path.exists():
        log.info("no %s in %s: training from epoch 1", CHECKPOINT, path.parent)
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"cannot resume from {path}: not a readable checkpoint ({exc})") from None
    if state.get("task") != task:
        raise ValueError(f"cannot resume: {path} is a {state.get('task')!r} run, not {task!r}")
    saved = state.get("config", {})
    differ = sorted(k for k in set(saved) | set(cfg)
                    if k not in RUNTIME_KEYS and jsonable(saved.get(k)) != jsonable(cfg.get(k)))
    if differ:
        shown = ", ".join(f"{k}: {saved.get(k)!r} -> {cfg.get(k)!r}" for k in differ[:5])
        raise ValueError(f"cannot resume {path.parent}: its config differs ({shown}); resume with the "
                         "same settings, or train into a new --out")
    if state.get("entries") != keys:
        raise ValueError(f"cannot resume {path.parent}: it was trained on other cache entries "
                         f"({state.get('entries')} vs {keys})")
    return state


def _lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay to 0 at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def _epoch_order(rng: np.random.Generator, items: np.ndarray, labels: np.ndarray, balance: str) -> np.ndarray:
    """A shuffled epoch, or (balance='sampler') one drawn with replacement at equal class odds."""
    if balance != "sampler":
        return rng.permutation(items)
    counts = np.bincount(labels[items])
    weights = 1.0 / counts[labels[items]]
    return rng.choice(items, size=len(items), replace=True, p=weights / weights.sum())


def _criterion(task: str, cfg: dict[str, Any], labels: np.ndarray,
               device: torch.device) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Cross-entropy (mg) or BCE on smoothed targets (emotion); class-weighted if configured."""
    weighted, smooth = cfg["class_balance"] == "weighted-loss", cfg["label_smoothing"]
    if task == "mg":
        counts = np.bincount(labels, minlength=cfg["num_classes"]).clip(min=1)
        weight = torch.tensor(len(labels) / (len(counts) * counts), dtype=torch.float32, device=device)
        return lambda logits, y: F.cross_entropy(logits, y, weight=weight if weighted else None,
                                                 label_smoothing=smooth)
    positives = labels.sum()
    pos_weight = torch.tensor((len(labels) - positives) / max(positives, 1), dtype=torch.float32, device=device)
    return lambda logits, y: F.binary_cross_entropy_with_logits(
        logits, y.float() * (1 - smooth) + 0.5 * smooth, pos_weight=pos_weight if weighted else None)


# ---- evaluation ----------------------------------------------------------------------------
def _evaluate(task: str, head: nn.Module, split: SplitData, cfg: dict[str, Any],
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
    logits = _logits(task, heads, split, items, cfgs, device, names)
    return {k: (task_metrics(task, labels, logits[k], cfgs[k]["num_classes"]), (labels, logits[k])) for k in heads}


@torch.inference_mode()
def _logits(task: str, heads: Mapping[Any, nn.Module], split: SplitData, items: np.ndarray,
            cfgs: Mapping[Any, dict[str, Any]], device: torch.device,
            names: Sequence[str] | None = None) -> dict[Any, np.ndarray]:
    """Each head's logits for `items`, one pass over their batches."""
    lead = next(iter(cfgs.values()))
    outs = {k: [torch.empty((0, cfgs[k]["num_classes"]) if task == "mg" else (0,))] for k in heads}
    for head in heads.values():
        head.eval()
    for batch in iter_batches(split, items, lead["batch_size"], names, wire_dtype(device)):
        batch = _to(batch, device)
        for k, head in heads.items():
            with _autocast(device, cfgs[k]["amp"]):
                outs[k].append(head(batch).float().cpu())
    return {k: torch.cat(parts).numpy() for k, parts in outs.items()}


def _autocast(device: torch.device, amp: bool) -> torch.autocast:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda")


def wire_dtype(device: torch.device) -> torch.dtype:
    """What batches travel as: the cache's float16 to a GPU (half the bytes), float32 on CPU."""
    return torch.float16 if device.type == "cuda" else torch.float32


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """The batch on `device`, token tensors widened to float32 there."""
    moved = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    return {k: v.float() if v.is_floating_point() else v for k, v in moved.items()}


def _summary(metrics: dict[str, Any], task: str) -> str:
    return "  ".join(f"{k} {metrics[k]:.4f}" for k in MONITORS[task] if k in metrics) or "no labels"


# ---- run folder ----------------------------------------------------------------------------
def _data(task: str, entries: Mapping[str, EntryReader], cfg: dict[str, Any],
          splits: tuple[str, ...] = ("train", "val", "test")) -> FusionData:
    inputs = get_head(cfg["head"], task).inputs(task, cfg)
    return build_data(task, entries, inputs, splits, cfg["align"], cfg["max_windows"], cfg["in_memory"],
                      cfg["memory_budget_gb"])


def _check_labels(task: str, data: FusionData, cfg: dict[str, Any]) -> None:
    if not (data.splits["train"].labels >= 0).any():
        raise ValueError(f"{task}: the train split has no labelled items")
    if task == "mg":
        top = max(int(s.labels.max(initial=-1)) for s in data.splits.values())
        if top >= cfg["num_classes"]:
            raise ValueError(f"MG label {top} out of range for num_classes={cfg['num_classes']}")


def _record(task: str, cfg: dict[str, Any], head: nn.Module, data: FusionData,
            entries: Mapping[str, EntryReader], device: torch.device) -> dict[str, Any]:
    """config.json: everything needed to rebuild the run and to know what it was trained on."""
    spec = get_head(cfg["head"], task)
    inputs = spec.inputs(task, cfg)
    roles = dict.fromkeys(inp.entry for inp in inputs.values())
    return {
        "task": task,
        "config": cfg,
        "head": {"name": spec.name, "description": spec.description,
                 "inputs": {n: asdict(inp) for n, inp in inputs.items()},
                 "shapes": {n: list(s) for n, s in data.shapes.items()},
                 "parameters": sum(p.numel() for p in head.parameters())},
        "entries": {role: {"name": entries[role].name, "path": str(Path(entries[role].dir).resolve()),
                           "key": entries[role].index["key"], "config": entries[role].config}
                    for role in roles},
        "data": {"in_memory": data.in_memory,
                 "items": {s: len(d) for s, d in data.splits.items()},
                 "labelled": {s: int((d.labels >= 0).sum()) for s, d in data.splits.items()}},
        "device": str(device),
        "versions": {"migue": project_version(), "torch": torch.__version__, "python": sys.version.split()[0]},
    }


def _load_run(run_dir: Path, split: str, entries: Mapping[str, EntryReader] | None
              ) -> tuple[str, dict[str, Any], nn.Module, FusionData, torch.device]:
    record = json.loads((run_dir / "config.json").read_text())
    task, cfg = record["task"], record["config"]
    given = dict(entries or {})
    opened = {}
    for role, info in record["entries"].items():
        opened[role] = given[role] if role in given else EntryReader(info["path"])
        if opened[role].index["key"] != info["key"]:
            log.warning("entry %s (%s) is not the one %s was trained on (%s): other features",
                        opened[role].name, role, run_dir, info["name"])
    data = _data(task, opened, cfg, (split,))
    recorded = {n: tuple(s) for n, s in record["head"]["shapes"].items()}
    if data.shapes != recorded:
        raise ValueError(f"entries give input shapes {data.shapes}; the head in {run_dir} expects {recorded}")
    device = pick_device(cfg["device"])
    checkpoint = torch.load(run_dir / "head.pt", map_location="cpu", weights_only=True)
    head = get_head(cfg["head"], task).build(task, data.shapes, cfg)
    head.load_state_dict(checkpoint["state_dict"])
    return task, cfg, head.to(device), data, device
