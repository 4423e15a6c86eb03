"""Runs of the online task (MiGA Track 2): train a temporal head over whole sequences of dense-window
tokens, evaluate it with both matching rules and mAP, predict segments; the `online` Task names this
module as its `runner` (fusion/tasks/online.py), so `runs.train_run` / `evaluate_run` / `predict_run`
hand its runs here instead of to the clip/video loop.

One item is one sequence: its dense windows in start order, each window one token per stream
(mean-pooled at load time), the targets per window class-or-background plus the distances from the
window's centre to the start and end of its gesture (`segments.encode_targets`, from the sequence's
ground truth in its first window's `segments`). Decoding (score threshold, class-wise NMS, minimum
length) takes the task's settings (`--set score_threshold=0.3`); a head with `decoder = "merge"` (the
window probe) joins runs of one arg-max class instead. The monitored metric is F1 at tIoU > 0.3 with
the strict rule on val; without labelled val sequences (SMG's kit split) the last epoch is kept.

Run folder: config.json, head.pt, metrics.json (per split: strict and kit P/R/F1 pooled and per class,
mAP at tIoU 0.3:0.1:0.7), history.csv, curves.png/curves.json, timeline.png (test sequences, else val),
done.json last.
"""
from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from migue.cache import COLUMN, EntryReader
from migue.cache.atomic import atomic_write_text, atomic_writer
from migue.cache.keys import project_version
from migue.cache.units import parse_segments
from migue.common.devices import pick_device

from ..config import resolve_config
from ..data import Input, _check_written, align_units, load_views, scope_masks
from ..fitting import _lr_factor, seed_everything, to_device
from ..progress import EpochProgress
from ..registry import get_head
from ..reports import (CURVES_FILE, HEAD_FILE, HISTORY_FILE, METRICS_FILE, TIMELINE_FILE, mark_done,
                       plot_curves, write_json)
from ..tasks import get_task
from .score import Segment, metrics_table, online_metrics
from .segments import DecodeSettings, StepGrid, decode_steps, encode_targets, merge_steps
from .timeline import write_timeline

log = logging.getLogger("migue.fusion.train")

__all__ = ["MissingSegmentsError", "Sequences", "build_sequences", "evaluate_run", "predict_run", "report",
           "train_run"]

SPLIT_NAMES = ("train", "val", "test")


class MissingSegmentsError(ValueError):
    """An entry whose dense windows do not carry their sequence's ground truth (`segments`)."""


@dataclass
class Sequences:
    """One split: per sequence its id (as the release spells it), window tokens per input (T, D),
    step grid, gestures (class, start, end; None unknown) and per-window targets."""

    ids: list[str]
    tokens: dict[str, list[np.ndarray]]
    grids: list[StepGrid]
    gestures: list[list[tuple[int, int, int]] | None]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def labelled(self) -> np.ndarray:
        return np.array([i for i, g in enumerate(self.gestures) if g is not None], dtype=np.int64)

    def batch(self, idx: Sequence[int]) -> dict[str, torch.Tensor]:
        """Padded tensors {input: (B, T, D), 'mask': (B, T), 'labels': (B, T), 'offsets': (B, T, 2)}."""
        lengths = [self.steps(i) for i in idx]
        longest = max(lengths)
        out: dict[str, torch.Tensor] = {}
        for name, per_seq in self.tokens.items():
            x = torch.zeros(len(idx), longest, per_seq[0].shape[1])                # (B, T, D)
            for b, i in enumerate(idx):
                x[b, :lengths[b]] = torch.from_numpy(per_seq[i])
            out[name] = x
        mask = torch.zeros(len(idx), longest, dtype=torch.bool)                    # (B, T)
        labels = torch.zeros(len(idx), longest, dtype=torch.long)                  # (B, T)
        offsets = torch.zeros(len(idx), longest, 2)                                # (B, T, 2)
        for b, i in enumerate(idx):
            mask[b, :lengths[b]] = True
            if self.gestures[i] is not None:
                step_labels, step_offsets = encode_targets(self.gestures[i], lengths[b], self.grids[i])
                labels[b, :lengths[b]] = torch.from_numpy(step_labels)
                offsets[b, :lengths[b]] = torch.from_numpy(step_offsets)
        out.update(mask=mask, labels=labels, offsets=offsets)
        return out

    def steps(self, i: int) -> int:
        """Windows (steps) of sequence `i`."""
        return len(next(iter(self.tokens.values()))[i])

    def truths(self, idx: Sequence[int] | None = None) -> list[Segment]:
        """The annotated gestures of the labelled sequences `idx` (default: all labelled)."""
        idx = self.labelled if idx is None else idx
        return [Segment(self.ids[i], c, s, e) for i in idx if self.gestures[i] is not None
                for c, s, e in self.gestures[i]]


def _roles(inputs: Mapping[str, Input]) -> list[str]:
    return list(dict.fromkeys(inp.entry for inp in inputs.values()))


def build_sequences(task: str, entries: Mapping[str, EntryReader], inputs: Mapping[str, Input],
                    splits: Sequence[str] = SPLIT_NAMES, partial: bool = False,
                    scope: Mapping[str, Collection[str]] | None = None, window_pool: str = "mean"
                    ) -> tuple[dict[str, Sequences], dict[str, tuple[int, int]]]:
    """The splits as sequences of window vectors, and each input's (1, D'). A window's tokens become
    one vector as `window_pool` says: 'mean' (D), 'space' (the mean over time per joint or place,
    flattened: V·D, where a gesture's hands are), 'time' (per time step, T'·D). Entries must hold dense
    windows of the same units (align strict); a sequence whose windows carry gesture labels but whose
    first window holds no `segments` is a MissingSegmentsError naming the entry and the unit."""
    spec = get_task(task)
    roles = _roles(inputs)
    missing = [r for r in roles if r not in entries]
    if missing:
        raise ValueError(f"task {task} needs entries {roles}; missing {missing} (given: {sorted(entries)})")
    for role in roles:
        _check_written(entries[role], partial)
        modality = entries[role].config.get("modality")
        if modality is not None and modality != role:
            raise ValueError(f"entry {entries[role].name} is a '{modality}' entry, given as '{role}'")
        if "dense" not in entries[role].config:
            raise MissingSegmentsError(
                f"entry {entries[role].name} ({role}) holds no dense windows with their sequences' segments "
                f"(unit kind {entries[role].config.get('unit_kind', 'mg')!r}); task {task} reads "
                f"`migue extract --modality {role} --units dense --data DATA`")
    keep = scope_masks({r: entries[r] for r in roles}, spec.unit_kind, scope)
    table = align_units({r: entries[r] for r in roles}, spec.unit_kind, "strict", keep)
    flat: dict[str, np.ndarray] = {}
    groups: dict[tuple[str, str], dict[str, Input]] = {}
    for name, inp in inputs.items():
        groups.setdefault((inp.entry, inp.stream), {})[name] = inp
    for (role, stream), views in groups.items():
        one_token = entries[role].token_shape(stream)[0] == 1  # any pooling of one token is that token
        pool = "mean" if one_token else window_pool
        read = load_views(entries[role], {n: Input(v.entry, v.stream, pool) for n, v in views.items()},
                          table[f"row:{role}"].to_numpy())
        flat.update({n: x.reshape(len(x), -1).astype(np.float32) for n, x in read.items()})  # (N, L'·D)
    shapes = {name: (1, int(x.shape[1])) for name, x in flat.items()}
    first_role = roles[0]
    out = {}
    for split in splits:
        part = table[table[COLUMN.split] == split]
        ids, grids, gestures, positions = [], [], [], []
        for video, group in part.sort_values([COLUMN.video_id, COLUMN.start], kind="stable").groupby(
                COLUMN.video_id, sort=True):
            starts, ends = group[COLUMN.start].to_numpy(), group[COLUMN.end].to_numpy()
            grids.append(StepGrid.from_windows(starts, ends, int(ends.max()), str(video)))
            first = group.iloc[0]
            found = parse_segments(str(first.get("segments", "")), str(first[COLUMN.unit_id]))
            if found == [] and (group[COLUMN.mg_label] >= 0).any():
                raise MissingSegmentsError(
                    f"entry {entries[first_role].name}: sequence {video}'s windows carry gesture labels but its "
                    f"first window {first[COLUMN.unit_id]} holds no `segments` (its ground truth): the entry was "
                    f"written before dense units carried it; extract it again with `migue extract --modality "
                    f"{first_role} --units dense`")
            name = str(first.get(COLUMN.video_name, "") or video)
            ids.append(name)
            gestures.append(found)
            positions.append(group.index.to_numpy())
        tokens = {n: [x[p] for p in positions] for n, x in flat.items()}
        out[split] = Sequences(ids, tokens, grids, gestures)
    return out, shapes


def _class_names(task: str, entries: Mapping[str, EntryReader], roles: Sequence[str]) -> list[str]:
    return list(get_task(task).classes_of({r: entries[r].config for r in roles if r in entries}))


def _settle(task: str, config: Mapping[str, Any], entries: Mapping[str, EntryReader]) -> dict[str, Any]:
    """The resolved config with num_classes from the entries' class names unless the user set it."""
    cfg = resolve_config(task, dict(config))
    if config.get("num_classes", "auto") == "auto":
        roles = _roles(get_head(cfg["head"], task).inputs(task, cfg))
        cfg["num_classes"] = len(_class_names(task, entries, roles))
    DecodeSettings.from_config(cfg)  # a bad decode setting is refused before anything is read
    return cfg


def _decode(head: nn.Module, probs: np.ndarray, offsets: np.ndarray, grid: StepGrid, settings: DecodeSettings,
            video: str, top_k: int = 1) -> list[Segment]:
    """Gestures of one sequence; with `top_k` > 0 a window proposes only its `top_k` likeliest classes
    (one gesture, one class: others of the same span would only cost precision)."""
    if getattr(head, "decoder", "offsets") == "merge":
        return merge_steps(probs, grid, settings, video)
    if top_k and top_k < probs.shape[1] - 1:
        kept = np.zeros_like(probs)                                                # (T, C+1)
        best = np.argsort(-probs[:, 1:], axis=1)[:, :top_k] + 1                    # (T, k)
        np.put_along_axis(kept, best, np.take_along_axis(probs, best, axis=1), axis=1)
        kept[:, 0] = probs[:, 0]
        probs = kept
    return decode_steps(probs, offsets, grid, settings, video)


@torch.inference_mode()
def detect_split(head: nn.Module, data: Sequences, idx: Sequence[int], cfg: Mapping[str, Any],
                 device: torch.device) -> tuple[list[Segment], float]:
    """The decoded gestures of sequences `idx`, and the mean loss over the labelled ones among them."""
    settings = DecodeSettings.from_config(dict(cfg))
    head.eval()
    found: list[Segment] = []
    losses = []
    step = max(1, int(cfg["batch_size"]))
    for first in range(0, len(idx), step):
        chosen = list(idx[first:first + step])
        batch = to_device(data.batch(chosen), device)
        out = head(batch)
        probs = out.logits.float().softmax(-1).cpu().numpy()                       # (B, T, C+1)
        offsets = out.offsets.float().cpu().numpy()                                # (B, T, 2)
        known = torch.tensor([data.gestures[i] is not None for i in chosen], device=device)
        if known.any():
            mask = batch["mask"] & known[:, None]
            losses.append(float(head.loss(out, batch["labels"], batch["offsets"], mask)) * int(known.sum()))
        for b, i in enumerate(chosen):
            steps = data.steps(i)
            found += _decode(head, probs[b, :steps], offsets[b, :steps], data.grids[i], settings, data.ids[i],
                             int(cfg.get("step_top_k", 0)))
    n = sum(data.gestures[i] is not None for i in idx)
    return found, (sum(losses) / n if n else float("nan"))


def evaluate_split(head: nn.Module, data: Sequences, cfg: Mapping[str, Any], device: torch.device
                   ) -> tuple[dict[str, Any], list[Segment]]:
    """Metrics of the labelled sequences of a split (both rules, per class, mAP; n = sequences) and
    the gestures predicted on them."""
    idx = data.labelled
    if not len(idx):
        return {"n": 0, "notes": ["no labelled sequences in this split"]}, []
    found, loss = detect_split(head, data, idx, cfg, device)
    metrics = online_metrics(found, data.truths(idx))
    return {"n": int(len(idx)), **metrics, "loss": loss, "notes": []}, found


def _record(task: str, cfg: dict[str, Any], head: nn.Module, inputs: Mapping[str, Input],
            shapes: Mapping[str, tuple[int, int]], splits: Mapping[str, Sequences],
            entries: Mapping[str, EntryReader], device: torch.device, class_names: list[str]) -> dict[str, Any]:
    spec = get_head(cfg["head"], task)
    source = get_task(task).source
    return {
        "task": task, "task_plugin": None if source == "built-in" else source, "config": cfg,
        "class_names": class_names,
        "head": {"name": spec.name, "description": spec.description,
                 "plugin": None if spec.source == "built-in" else spec.source,
                 "inputs": {n: asdict(i) for n, i in inputs.items()},
                 "shapes": {n: list(s) for n, s in shapes.items()},
                 "parameters": sum(p.numel() for p in head.parameters())},
        "entries": {role: {"name": entries[role].name, "path": str(Path(entries[role].dir).resolve()),
                           "key": entries[role].index["key"], "config": entries[role].config}
                    for role in _roles(inputs)},
        "data": {"in_memory": True, "items": {s: len(d) for s, d in splits.items()},
                 "labelled": {s: int(len(d.labelled)) for s, d in splits.items()}},
        "device": str(device),
        "versions": {"migue": project_version(), "torch": torch.__version__, "python": sys.version.split()[0]},
    }


def train_run(task: str, entries: Mapping[str, EntryReader], out_dir: Path, config: dict[str, Any] | None = None,
              scope: Mapping[str, Collection[str]] | None = None) -> dict[str, Any]:
    """Train the online head config['head'] (`detect`, or the `window-probe` baseline) on the dense
    entries by role; write the run folder; return its metrics."""
    from ..runs import clear_results

    config = dict(config or {})
    if config.pop("resume", False):
        raise ValueError(f"task {task}: --resume is not available for online runs yet; train again with --overwrite")
    partial = bool(config.pop("allow_partial", False))
    cfg = _settle(task, config, entries)
    spec = get_head(cfg["head"], task)
    inputs = spec.inputs(task, cfg)
    out_dir = Path(out_dir)
    fresh = not out_dir.exists() or not any(out_dir.iterdir())
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg["seed"])
    splits, shapes = build_sequences(task, entries, inputs, SPLIT_NAMES, partial, scope, cfg["window_pool"])
    class_names = _class_names(task, entries, _roles(inputs))
    train = splits["train"]
    items = train.labelled
    if not len(items):
        raise ValueError(f"{task}: the train split has no labelled sequences")
    top = max((c for i in items for c, _, _ in train.gestures[i]), default=-1)
    if top >= cfg["num_classes"]:
        raise ValueError(f"{task} class {top} out of range for num_classes={cfg['num_classes']}")
    device = pick_device(cfg["device"])
    head = spec.build(task, shapes, cfg).to(device)
    if not fresh:
        clear_results(out_dir)
    write_json(out_dir / "config.json", _record(task, cfg, head, inputs, shapes, splits, entries, device,
                                                class_names))
    history, best_state, best_epoch = _fit(task, head, splits, cfg, device)
    head.load_state_dict(best_state)
    results = {s: evaluate_split(head, splits[s], cfg, device) for s in SPLIT_NAMES}
    with atomic_writer(out_dir / HEAD_FILE) as f:
        torch.save({"state_dict": {k: v.detach().cpu() for k, v in head.state_dict().items()}, "task": task,
                    "head": cfg["head"], "config": cfg, "shapes": {n: list(s) for n, s in shapes.items()}}, f)
    metrics = {"task": task, "head": cfg["head"], "monitor": cfg["monitor"], "best_epoch": best_epoch,
               "epochs_run": len(history), "class_names": class_names,
               "decode": DecodeSettings.from_config(cfg).as_dict(),
               **{s: results[s][0] for s in ("val", "test", "train")}}
    write_json(out_dir / METRICS_FILE, metrics)
    atomic_write_text(out_dir / HISTORY_FILE, history.to_csv(index=False))
    plot_curves(history, out_dir / CURVES_FILE, cfg["monitor"], best_epoch, f"{out_dir.name}: {cfg['head']} {task}")
    shown = "test" if results["test"][0]["n"] else "val"
    write_timeline(splits[shown].truths(), results[shown][1], out_dir / TIMELINE_FILE, class_names,
                   videos=[splits[shown].ids[i] for i in splits[shown].labelled])
    mark_done(out_dir)
    log.info("%s %s: test f1@0.3 %s", task, cfg["head"], results["test"][0].get("f1@0.3"))
    return metrics


def _fit(task: str, head: nn.Module, splits: Mapping[str, Sequences], cfg: dict[str, Any], device: torch.device
         ) -> tuple[pd.DataFrame, dict[str, torch.Tensor], int]:
    """AdamW + warm-up/cosine over batches of whole sequences; the best state by val F1 (ties: lower
    val loss), or the last epoch without labelled val sequences."""
    train, val = splits["train"], splits["val"]
    items, has_val = train.labelled, bool(len(val.labelled))
    if not has_val:
        log.warning("no labelled val sequences: no early stopping, the last epoch is kept")
    steps = math.ceil(len(items) / cfg["batch_size"])
    warmup, total = round(cfg["warmup_epochs"] * steps), cfg["epochs"] * steps
    decay = [p for p in head.parameters() if p.dim() >= 2]
    no_decay = [p for p in head.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg["weight_decay"]},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg["lr"])
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(step, warmup, total))
    rng = np.random.default_rng(cfg["seed"])
    progress = EpochProgress(cfg["head"], 1, cfg["epochs"], cfg["monitor"] if has_val else None)
    rows: list[dict[str, Any]] = []
    best_score, best_epoch, best_state, stale = (-math.inf, -math.inf), 0, {}, 0
    for epoch in range(1, cfg["epochs"] + 1):
        began, loss_sum = time.perf_counter(), 0.0
        head.train()
        order = rng.permutation(items)
        for first in range(0, len(order), cfg["batch_size"]):
            chosen = order[first:first + cfg["batch_size"]]
            batch = to_device(train.batch(chosen), device)
            loss = head.loss(head(batch), batch["labels"], batch["offsets"], batch["mask"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg["grad_clip"]:
                nn.utils.clip_grad_norm_(head.parameters(), cfg["grad_clip"])
            optimizer.step()
            schedule.step()
            loss_sum += loss.item() * len(chosen)
        row: dict[str, Any] = {"epoch": epoch, "train_loss": loss_sum / len(items), "lr": optimizer.param_groups[0]["lr"]}
        score = (float(epoch), 0.0)
        if has_val:
            metrics, _ = evaluate_split(head, val, cfg, device)
            row.update({"val_loss": metrics["loss"], **{f"val_{k}": metrics[k] for k in get_task(task).metrics
                                                         if k in metrics}})
            monitored = row.get(f"val_{cfg['monitor']}", math.nan)
            score = (-math.inf if math.isnan(monitored) else monitored, -row["val_loss"])
        row["seconds"] = time.perf_counter() - began
        rows.append(row)
        stale += 1
        if score > best_score:
            best_score, best_epoch, stale = score, epoch, 0
            best_state = {k: v.detach().cpu().clone() for k, v in head.state_dict().items()}
        stop = bool(has_val and cfg["patience"] and stale >= cfg["patience"])
        progress.update(rows, best_epoch, stop)
        if stop:
            break
    progress.close()
    return pd.DataFrame(rows), best_state, best_epoch


def _load(run_dir: Path, split: str, entries: Mapping[str, EntryReader] | None, trust_run: bool, partial: bool,
          scope: Mapping[str, Collection[str]] | None
          ) -> tuple[dict[str, Any], dict[str, Any], nn.Module, Sequences, torch.device]:
    from ..runs import open_run

    record, opened = open_run(run_dir, entries, trust_run, "train it again")
    task, cfg = record["task"], record["config"]
    inputs = get_head(cfg["head"], task).inputs(task, cfg)
    splits, shapes = build_sequences(task, opened, inputs, (split,), partial, scope, cfg.get("window_pool", "mean"))
    recorded = {n: tuple(s) for n, s in record["head"]["shapes"].items()}
    if shapes != recorded:
        raise ValueError(f"entries give input shapes {shapes}; the head in {run_dir} expects {recorded}")
    device = pick_device(cfg["device"])
    head = get_head(cfg["head"], task).build(task, shapes, cfg)
    head.load_state_dict(torch.load(run_dir / HEAD_FILE, map_location="cpu", weights_only=True)["state_dict"])
    return record, cfg, head.to(device), splits[split], device


def evaluate_run(run_dir: Path, split: str = "test", entries: Mapping[str, EntryReader] | None = None,
                 trust_run: bool = False, partial: bool = False,
                 scope: Mapping[str, Collection[str]] | None = None) -> dict[str, Any]:
    """A run's metrics on `split` recomputed from the cache (both rules, per class, mAP), with the
    class names."""
    record, cfg, head, data, device = _load(Path(run_dir), split, entries, trust_run, partial, scope)
    metrics, _ = evaluate_split(head, data, cfg, device)
    return {**metrics, "class_names": record.get("class_names", [])}


def predict_run(run_dir: Path, split: str = "test", entries: Mapping[str, EntryReader] | None = None,
                trust_run: bool = False, partial: bool = False,
                scope: Mapping[str, Collection[str]] | None = None) -> pd.DataFrame:
    """The gestures found in every sequence of `split`: video_id, label (0-based class index), start,
    end (0-based inclusive frames), score, by sequence then start. `attrs`: 'sequences' (every
    sequence of the split, for one file each), 'truth' (the annotated gestures of its labelled
    sequences, same columns without score; None when none is labelled), 'class_names', 'layout'."""
    record, cfg, head, data, device = _load(Path(run_dir), split, entries, trust_run, partial, scope)
    found, _ = detect_split(head, data, np.arange(len(data)), cfg, device)
    table = _segments_table(sorted(found, key=lambda s: (s.video_id, s.start, s.end)), with_score=True)
    truth = data.truths() if len(data.labelled) else None
    table.attrs.update(sequences=list(data.ids), class_names=record.get("class_names", []),
                       truth=None if truth is None else _segments_table(truth, with_score=False),
                       layout=next(iter(record["entries"].values()))["config"].get("dataset_layout", ""))
    return table


def _segments_table(segments: Sequence[Segment], with_score: bool) -> pd.DataFrame:
    columns = ["video_id", "label", "start", "end"] + (["score"] if with_score else [])
    rows = [[s.video_id, int(s.label), s.start, s.end] + ([s.score] if with_score else []) for s in segments]
    return pd.DataFrame(rows, columns=columns)


def report(metrics: Mapping[str, Any], class_names: Sequence[str] | None = None) -> str:
    """Both matching rules per class and mAP per tIoU threshold, as text (what `evaluate` adds to its
    table for an online run); '' for metrics without them."""
    if not isinstance(metrics.get("strict"), Mapping):
        return ""
    names = list(class_names or metrics.get("class_names") or []) or None
    lines = []
    for rule, what in (("strict", "one prediction per truth, by score"),
                       ("kit", "the starter kit's: first prediction in file order, not used up")):
        result = _int_keys(metrics[rule])
        lines += ["", f"{rule} matching at tIoU > 0.3 ({what}):", metrics_table(result, names)]
    by_iou = metrics.get("mAP_by_iou") or {}
    lines += ["", "mAP at tIoU " + "  ".join(f"{float(k):.1f}: {v:.3f}" for k, v in by_iou.items())
              + f"  (mean {metrics.get('mAP', float('nan')):.3f})"]
    return "\n".join(lines)


def _int_keys(result: Mapping[str, Any]) -> dict[str, Any]:
    """A score result read back from JSON has string class keys: whole numbers as ints again."""
    per_class = {int(k) if isinstance(k, str) and k.lstrip("-").isdigit() else k: v
                 for k, v in result.get("per_class", {}).items()}
    return {**result, "per_class": per_class}
