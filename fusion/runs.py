"""Runs: train one head over cache entries into a self-describing run folder, resume it, re-evaluate
it or predict with it later.

Run folder: config.json (resolved config, entries with paths, keys and configs), head.pt
(best-on-val state_dict + config; torch.load(weights_only=True)), metrics.json (test and
val metrics, chance levels), history.csv (one row per epoch run), confusion.png (axes named by
class), per_class.csv (support, predicted, accuracy, F1 per class, on test or else val), curves.png,
checkpoint.pt (after every epoch, written atomically: head, optimizer, schedule, every RNG,
early-stopping state and history; `resume: True` continues from it to the very result an
uninterrupted run gives). Every file is published by temp name + rename, done.json last; a new
run into a folder takes the old run's done.json and results away before it writes its config.json,
so a run killed early never shows the old results under the new config (`check_run_dir` is the
command line's refusal to start one without --resume or --overwrite).
"""
from __future__ import annotations

import json
import logging
import random
import shutil
import sys
from collections.abc import Collection, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from migue.cache import EntryReader
from migue.cache.keys import project_version
from migue.common.devices import pick_device
from migue.cache.atomic import atomic_write_text, atomic_writer, fsync_dir

from .config import resolve_config
from .data import FusionData, build_data, iter_batches
from .heads import HeadContractError, check_head
from .fitting import (Fitter, check_labels, epoch_order, evaluate_head, head_logits, seed_everything, to_device,
                      training_setup, wire_dtype)
from .progress import EpochProgress
from .metrics import chance_levels, confusion, per_class_table, predictions, probabilities
from .registry import get_head, list_heads, load_plugins
from .tasks import UnknownTaskError, get_task
from .reports import (CONFUSION_FILE, CURVES_FILE, DONE_FILE, HEAD_FILE, HISTORY_FILE, METRICS_FILE, PER_CLASS_FILE,
                      RESULT_FILES, TENSORBOARD_DIR, finished_metrics, jsonable, mark_done, plot_confusion,
                      plot_curves, write_json, write_tensorboard)

log = logging.getLogger("migue.fusion.train")

__all__ = ["check_run_dir", "clear_results", "evaluate_run", "predict_run", "run_record", "task_data", "train_run",
           "write_results"]

CHECKPOINT = "checkpoint.pt"
RUNTIME_KEYS = ("device", "in_memory", "memory_budget_gb")  # may differ on resume: same numbers


def train_run(task: str, entries: Mapping[str, EntryReader], out_dir: Path,
              config: dict[str, Any] | None = None, scope: Mapping[str, Collection[str]] | None = None
              ) -> dict[str, Any]:
    """Train head config['head'] for `task` (a registered task: 'mg', 'emotion', ...) on entries keyed
    by role (the task's modalities: mg rgb, pose; emotion face, context); write the run folder;
    return its metrics.
    config['resume'] = True continues the run in `out_dir` from its last completed epoch;
    config['allow_partial'] = True trains on the published part of an entry extract still writes.
    `scope[role]`: the unit ids of the dataset to train on (--data); without it an entry holding
    units of another dataset than the one last extracted into it is refused. A task naming its own
    runner (`Task.runner`: the online task's sequences) is trained there."""
    runner = get_task(task).run_module()
    if runner is not None:
        return runner.train_run(task, entries, out_dir, config, scope)
    config = dict(config or {})
    resume = bool(config.pop("resume", False))
    partial = bool(config.pop("allow_partial", False))
    cfg = resolve_config(task, config)
    spec = get_head(cfg["head"], task)
    out_dir = Path(out_dir)
    fresh = not out_dir.exists() or not any(out_dir.iterdir())
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg["seed"])
    data = task_data(task, entries, cfg, partial=partial, scope=scope)
    check_labels(task, data, cfg)
    device = pick_device(cfg["device"])
    head = spec.build(task, data.shapes, cfg).to(device)
    record = run_record(task, cfg, head, data, entries, device)
    keys = {role: entry["key"] for role, entry in record["entries"].items()}
    state = _load_checkpoint(out_dir / CHECKPOINT, task, cfg, keys) if resume else None
    if not fresh:  # the same run continued keeps its results until it rewrites them; any other run clears them
        clear_results(out_dir, keep=state is not None)
    write_json(out_dir / "config.json", record)
    try:
        history, best_state, best_epoch = _fit(task, head, data, cfg, device, out_dir / CHECKPOINT, state,
                                               {"task": task, "config": cfg, "entries": keys})
    except HeadContractError:
        if fresh:  # refused before any step: leave no half run folder behind
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    head.load_state_dict(best_state)
    results = {s: evaluate_head(task, head, data.splits[s], cfg, device) for s in ("val", "test")}
    return write_results(out_dir, task, cfg, head, data, history, best_epoch, results)


def write_results(out_dir: Path, task: str, cfg: dict[str, Any], head: nn.Module, data: FusionData,
                  history: pd.DataFrame, best_epoch: int,
                  results: dict[str, tuple[dict[str, Any], tuple[np.ndarray, np.ndarray]]]) -> dict[str, Any]:
    """head.pt, metrics.json, history.csv, curves.png, TensorBoard events and confusion.png of
    a trained head (its best state loaded) from its val and test `results`; returns the metrics."""
    with atomic_writer(out_dir / HEAD_FILE) as f:  # a full disk keeps the old file, never a torn one
        torch.save({"state_dict": {k: v.detach().cpu() for k, v in head.state_dict().items()}, "task": task,
                    "head": cfg["head"], "config": cfg, "shapes": {n: list(s) for n, s in data.shapes.items()}}, f)
    train_labels = data.splits["train"].labels
    test = data.splits["test"]
    metrics = {
        "task": task, "head": cfg["head"], "monitor": cfg["monitor"],
        "best_epoch": best_epoch, "epochs_run": len(history),
        "test": results["test"][0], "val": results["val"][0],
        "chance": chance_levels(task, train_labels[train_labels >= 0], test.labels[test.labels >= 0],
                                cfg["num_classes"]),
    }
    write_json(out_dir / METRICS_FILE, metrics)
    atomic_write_text(out_dir / HISTORY_FILE, history.to_csv(index=False))
    plot_curves(history, out_dir / CURVES_FILE, cfg["monitor"], best_epoch, f"{out_dir.name}: {cfg['head']} {task}")
    write_tensorboard(history, out_dir / TENSORBOARD_DIR)
    shown = "test" if metrics["test"]["n"] else "val"
    labels, logits = results[shown][1]
    figures = get_task(task).figures
    if "confusion" in figures:
        plot_confusion(confusion(task, labels, logits, cfg["num_classes"]), out_dir / CONFUSION_FILE,
                       f"{out_dir.name}: {cfg['head']} {task}, {shown} split (best epoch {best_epoch})",
                       get_task(task).names(cfg["num_classes"]))
    if "per_class" in figures:
        atomic_write_text(out_dir / PER_CLASS_FILE, per_class_table(task, labels, logits, cfg["num_classes"])
                          .assign(split=shown).to_csv(index=False))
    mark_done(out_dir)  # last: the run counts as finished only from here
    log.info("%s %s: test %s", task, cfg["head"], _summary(metrics["test"], task))
    return metrics


def check_run_dir(out_dir: Path, resume: bool = False, overwrite: bool = False) -> None:
    """Refuse to start a new run in a folder that already holds something, unless the user said
    what to do with it: `resume` continues the run there, `overwrite` replaces it (only a run: a
    folder holding neither config.json nor done.json is refused, its files are not ours to remove)."""
    if resume and overwrite:
        raise ValueError("give --resume or --overwrite, not both: --resume continues the run in --out, "
                         "--overwrite replaces it")
    out_dir = Path(out_dir)
    if resume or not out_dir.is_dir():
        return
    held = sorted(p.name for p in out_dir.iterdir())
    if not held:
        return
    shown = ", ".join(held[:5]) + (", ..." if len(held) > 5 else "")
    if not overwrite:
        raise ValueError(f"{out_dir} already holds a run ({shown}): pass --resume to continue it, "
                         "--overwrite to replace it, or choose another --out")
    if not {"config.json", DONE_FILE} & set(held):
        raise ValueError(f"{out_dir} holds {shown} but no run (no config.json or {DONE_FILE}): --overwrite "
                         "replaces only a run folder; choose another --out")


def clear_results(out_dir: Path, keep: bool = False) -> None:
    """Take a run's results out of `out_dir`, done.json first (from then on the folder is an
    unfinished run); `keep` removes only done.json (the same run, continued, rewrites the rest)."""
    names = (DONE_FILE,) if keep else (DONE_FILE, *RESULT_FILES, CHECKPOINT)
    for name in names:
        path = Path(out_dir) / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        if name == DONE_FILE:
            fsync_dir(out_dir)  # unmarked for good before anything else changes
    fsync_dir(out_dir)


def evaluate_run(run_dir: Path, split: str = "test", entries: Mapping[str, EntryReader] | None = None,
                 trust_run: bool = False, partial: bool = False,
                 scope: Mapping[str, Collection[str]] | None = None) -> dict[str, Any]:
    """Reload a run (its config, head.pt and entries, or `entries` by role) and recompute the
    metrics of `split`. A plugin head's module is imported only if loaded already (the user named
    it: --plugin) or with `trust_run`: a run folder alone never runs code. An entry extract still
    writes is refused unless `partial`; `scope` as for `train_run`."""
    runner = _runner_of(Path(run_dir))
    if runner is not None:
        return runner.evaluate_run(Path(run_dir), split, entries, trust_run, partial, scope)
    task, cfg, head, data, device = _load_run(Path(run_dir), split, entries, trust_run, partial, scope)
    return evaluate_head(task, head, data.splits[split], cfg, device)[0]


def predict_run(run_dir: Path, split: str = "test", entries: Mapping[str, EntryReader] | None = None,
                trust_run: bool = False, partial: bool = False,
                scope: Mapping[str, Collection[str]] | None = None) -> pd.DataFrame:
    """Predictions for every item of `split`, labelled or not: a task of videos (emotion: video_id,
    label 0/1, video_name, p_win: p_ and the positive class's name), of clips (mg: unit_id, video_id,
    label = class index, video_name, label_row, p_00..p_31 = class probabilities). `video_name` is the id as the release spells it,
    `label_row` the clip's 0-based row in its label file (-1: not recorded in the entry). Plugin
    heads, entries still written and `scope` as for `evaluate_run`. A task with its own runner predicts
    there (online: one row per gesture found, see fusion/online/runs.py)."""
    runner = _runner_of(Path(run_dir))
    if runner is not None:
        return runner.predict_run(Path(run_dir), split, entries, trust_run, partial, scope)
    task, cfg, head, data, device = _load_run(Path(run_dir), split, entries, trust_run, partial, scope)
    part = data.splits[split]
    logits = head_logits(task, {0: head}, part, np.arange(len(part)), {0: cfg}, device)[0]
    labels, probs, spec = predictions(task, logits), probabilities(task, logits), get_task(task)
    if spec.items == "clip":
        table = pd.DataFrame({"unit_id": part.ids, "video_id": part.video_ids, "label": labels,
                              "video_name": part.video_names, "label_row": part.label_rows})
    else:
        table = pd.DataFrame({"video_id": part.ids, "label": labels, "video_name": part.video_names})
    if spec.binary:
        scores = pd.DataFrame({f"p_{spec.class_names[1]}": probs})
    else:
        scores = pd.DataFrame(probs, columns=[f"p_{k:02d}" for k in range(probs.shape[1])])
    return pd.concat([table, scores], axis=1)


def _runner_of(run_dir: Path):
    """The run module of the task a finished run folder was trained for (None: this module's loop)."""
    config = run_dir / "config.json"
    if not config.is_file():
        return None  # not a run: _load_run says so
    try:
        return get_task(json.loads(config.read_text())["task"]).run_module()
    except (UnknownTaskError, KeyError, ValueError):
        return None  # a plugin task not loaded yet, or a broken record: _load_run names what to do


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
    progress = EpochProgress(cfg["head"], first, cfg["epochs"], cfg["monitor"] if has_val else None)
    checked = False
    for epoch in range(first, cfg["epochs"] + 1):
        order = epoch_order(rng, items, train.labels, cfg["class_balance"])
        for batch in iter_batches(train, order, cfg["batch_size"], dtype=wire_dtype(device)):
            batch = to_device(batch, device)
            if not checked:  # the contract, on the first real batch (no extra read), before any step
                check_head(cfg["head"], task, head, batch, cfg)
                checked = True
            fitter.step(batch)
        val = evaluate_head(task, head, data.splits["val"], cfg, device)[0] if has_val else None
        stop = fitter.end_epoch(epoch, val)
        progress.update(fitter.rows, fitter.best_epoch, stop)
        if checkpoint is not None:
            _save_checkpoint(checkpoint, {**(identity or {}), "epoch": epoch, **fitter.state(),
                                          "rng": _rng_states(rng)})
        if stop:
            break
    progress.close()
    return fitter.history(), fitter.best_state, fitter.best_epoch


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


def _summary(metrics: dict[str, Any], task: str) -> str:
    return "  ".join(f"{k} {metrics[k]:.4f}" for k in get_task(task).metrics if k in metrics) or "no labels"


def task_data(task: str, entries: Mapping[str, EntryReader], cfg: dict[str, Any],
          splits: tuple[str, ...] = ("train", "val", "test"), partial: bool = False,
          scope: Mapping[str, Collection[str]] | None = None) -> FusionData:
    inputs = get_head(cfg["head"], task).inputs(task, cfg)
    return build_data(task, entries, inputs, splits, cfg["align"], cfg["max_windows"], cfg["in_memory"],
                      cfg["memory_budget_gb"], partial=partial, scope=scope)


def run_record(task: str, cfg: dict[str, Any], head: nn.Module, data: FusionData,
            entries: Mapping[str, EntryReader], device: torch.device) -> dict[str, Any]:
    """config.json: everything needed to rebuild the run and to know what it was trained on."""
    spec = get_head(cfg["head"], task)
    inputs = spec.inputs(task, cfg)
    roles = dict.fromkeys(inp.entry for inp in inputs.values())
    source = get_task(task).source
    return {
        "task": task,
        "task_plugin": None if source == "built-in" else source,  # named to evaluate/predict, like the head's
        "config": cfg,
        "head": {"name": spec.name, "description": spec.description,
                 "plugin": None if spec.source == "built-in" else spec.source,  # named to evaluate/predict
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


def _run_plugin(run_dir: Path, record: dict[str, Any], trust_run: bool) -> None:
    """Make the run's task and head available: a built-in or entry-point one is; a plugin file or
    module recorded in the run is imported only with `trust_run`, else it must be loaded already."""
    task_plugin = record.get("task_plugin")
    if task_plugin and not task_plugin.startswith("entry-point:"):
        if trust_run:
            load_plugins([task_plugin])
        else:
            try:
                get_task(record["task"])
            except UnknownTaskError:
                raise ValueError(f"{run_dir} needs the plugin {task_plugin} (task {record['task']!r}); a run folder "
                                 f"does not import code by itself: pass --plugin {task_plugin} if you trust it, "
                                 "or --trust-run") from None
    plugin, name = record["head"].get("plugin"), record["config"]["head"]
    if not plugin or plugin.startswith("entry-point:") or name in list_heads():
        return  # built-in, published by a package, or loaded already (--plugin, perhaps from a new place)
    if (plugin.endswith(".py") or "/" in plugin) and not Path(plugin).is_file():
        raise ValueError(f"{run_dir} was trained with head {name!r} from the plugin file {plugin}, which is not "
                         "there any more: pass --plugin NEW_PATH, the file's new place")
    if trust_run:
        load_plugins([plugin])
    else:
        raise ValueError(f"{run_dir} needs the plugin {plugin} (head {name!r}); a run folder does not import "
                         f"code by itself: pass --plugin {plugin} if you trust it, or --trust-run")


def open_run(run_dir: Path, entries: Mapping[str, EntryReader] | None = None, trust_run: bool = False,
             again: str = "finish it with `migue fuse-train ... --resume`, or train it again"
             ) -> tuple[dict[str, Any], dict[str, EntryReader]]:
    """A finished run's config.json and its entries by role (`entries` where given, else the recorded
    paths; another entry than the one trained on is a warning), its plugins made available; an
    unfinished run is a ValueError saying how to go on (`again`)."""
    if finished_metrics(run_dir) is None:
        raise ValueError(f"{run_dir} is not a finished run (no valid {DONE_FILE}: it was interrupted or is "
                         f"still training); {again}")
    record = json.loads((run_dir / "config.json").read_text())
    _run_plugin(run_dir, record, trust_run)
    given = dict(entries or {})
    opened = {}
    for role, info in record["entries"].items():
        opened[role] = given[role] if role in given else EntryReader(info["path"])
        if opened[role].index["key"] != info["key"]:
            log.warning("entry %s (%s) is not the one %s was trained on (%s): other features",
                        opened[role].name, role, run_dir, info["name"])
    return record, opened


def _load_run(run_dir: Path, split: str, entries: Mapping[str, EntryReader] | None, trust_run: bool = False,
              partial: bool = False, scope: Mapping[str, Collection[str]] | None = None
              ) -> tuple[str, dict[str, Any], nn.Module, FusionData, torch.device]:
    record, opened = open_run(run_dir, entries, trust_run)
    task, cfg = record["task"], record["config"]
    data = task_data(task, opened, cfg, (split,), partial, scope)
    recorded = {n: tuple(s) for n, s in record["head"]["shapes"].items()}
    if data.shapes != recorded:
        raise ValueError(f"entries give input shapes {data.shapes}; the head in {run_dir} expects {recorded}")
    device = pick_device(cfg["device"])
    checkpoint = torch.load(run_dir / "head.pt", map_location="cpu", weights_only=True)
    head = get_head(cfg["head"], task).build(task, data.shapes, cfg)
    head.load_state_dict(checkpoint["state_dict"])
    return task, cfg, head.to(device), data, device
