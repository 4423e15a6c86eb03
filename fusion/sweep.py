"""Many probes, one read: train probe heads over many configurations in one pass over the cache.

Every probe of a sweep shares one `build_data` (each cache stream is read once, all the
poolings asked of it taken from that read) and, within a pass, one batch order: each batch
is read once and every probe still training takes its step on it, then one pass over val
scores them all. Probes that share the seed, batch size, epochs and sampling share a pass.
A linear probe trained in a sweep gives exactly the metrics of its own `train_run`; an MLP
probe's dropout draws from the pass's shared random stream, so it differs from its solo run
(seeded and reproducible all the same). Each configuration gets the run folder `train_run`
writes (evaluate_run and predict_run read it the same way); its history's `seconds` are the
pass's, shared by every probe in it.
"""
from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from migue.cache import EntryReader
from migue.common.devices import pick_device

from .baselines import Probe
from .config import resolve_config
from .data import FusionData, Input, build_data, iter_batches
from .registry import get_head
from .reports import write_json
from .fitting import (Fitter, check_labels, epoch_order, evaluate_heads, seed_everything, to_device, training_setup,
                      wire_dtype)
from .runs import clear_results, run_record, write_results

log = logging.getLogger(__name__)

DATA_KEYS = ("align", "max_windows", "in_memory", "memory_budget_gb", "device", "amp")  # one build_data
PASS_KEYS = ("seed", "batch_size", "epochs", "class_balance")                           # one batch order


def is_probe(head: str) -> bool:
    """Whether registry head `head` is a single-stream probe (what a sweep trains)."""
    if not head.startswith("probe-"):
        return False
    try:
        return get_head(head).source == "built-in"  # a plugin head named probe-* trains on its own
    except KeyError:
        return False


def sweep_probes(task: str, entries: Mapping[str, EntryReader],
                 runs: Mapping[Path, dict[str, Any]]) -> dict[Path, dict[str, Any]]:
    """Train every probe config of `runs` ({run folder: config}) in one read of the cache;
    write each run folder; return {run folder: metrics}."""
    cfgs = {Path(out): resolve_config(task, dict(config)) for out, config in runs.items()}
    if not cfgs:
        return {}
    not_probes = sorted({c["head"] for c in cfgs.values() if not is_probe(c["head"])})
    if not_probes:
        raise ValueError(f"a probe sweep trains probe heads only; got {not_probes}")
    first = next(iter(cfgs.values()))
    differ = sorted(k for k in DATA_KEYS for c in cfgs.values() if c[k] != first[k])
    if differ:
        raise ValueError(f"a probe sweep shares one data set: configs differ in {sorted(set(differ))}")

    views = {out: _view(task, cfg) for out, cfg in cfgs.items()}             # run -> (view name, Input)
    inputs = {name: inp for name, inp in views.values()}
    data = build_data(task, entries, inputs, align=first["align"], max_windows=first["max_windows"],
                      in_memory=first["in_memory"], memory_budget_gb=first["memory_budget_gb"])
    check_labels(task, data, first)
    device = pick_device(first["device"])
    log.info("probe sweep: %d configs over %d views (%s), data read once", len(cfgs), len(inputs),
             ", ".join(inputs))

    passes: dict[tuple, list[Path]] = {}
    for out, cfg in cfgs.items():
        passes.setdefault(tuple(cfg[k] == "sampler" if k == "class_balance" else cfg[k] for k in PASS_KEYS),
                          []).append(out)
    metrics = {}
    for outs in passes.values():
        metrics.update(_train_pass(task, data, {o: cfgs[o] for o in outs}, {o: views[o][0] for o in outs},
                                   entries, device))
    return metrics


def _view(task: str, cfg: dict[str, Any]) -> tuple[str, Input]:
    """The probe's one input under a name unique to its stream and pooling, e.g. 'rgb@tokens@space'."""
    (name, inp), = get_head(cfg["head"], task).inputs(task, cfg).items()
    return f"{name}@{inp.stream}@{inp.pool}", inp


def _train_pass(task: str, data: FusionData, cfgs: dict[Path, dict[str, Any]], names: dict[Path, str],
                entries: Mapping[str, EntryReader], device: torch.device) -> dict[Path, dict[str, Any]]:
    """Probes sharing a batch order: build each as train_run would, then step them all per batch."""
    lead = next(iter(cfgs.values()))
    train = data.splits["train"]
    items, steps, has_val = training_setup(data, lead)
    wanted = sorted(set(names.values()))  # the views this pass reads
    fitters = {}
    for out, cfg in cfgs.items():
        seed_everything(cfg["seed"])  # the same initial weights as the probe's own train_run
        head = _build(task, cfg, names[out], data).to(device)
        fitters[out] = Fitter(task, head, cfg, train.labels[items], steps, has_val, device)
    rng = np.random.default_rng(lead["seed"])
    for epoch in tqdm(range(1, lead["epochs"] + 1), desc=f"{len(cfgs)} probes", unit="epoch", leave=False,
                      disable=not sys.stderr.isatty()):
        active = {o: f for o, f in fitters.items() if not f.stopped}
        if not active:
            break
        order = epoch_order(rng, items, train.labels, lead["class_balance"])
        for batch in iter_batches(train, order, lead["batch_size"], wanted, wire_dtype(device)):
            batch = to_device(batch, device)
            for fitter in active.values():
                fitter.step(batch)
        vals = evaluate_heads(task, {o: f.head for o, f in active.items()}, data.splits["val"], cfgs, device,
                              wanted) if has_val else {}
        for out, fitter in active.items():
            fitter.end_epoch(epoch, vals[out][0] if has_val else None)

    for fitter in fitters.values():
        fitter.head.load_state_dict(fitter.best_state)
    results = {s: evaluate_heads(task, {o: f.head for o, f in fitters.items()}, data.splits[s], cfgs, device,
                                 wanted) for s in ("val", "test")}
    metrics = {}
    for out, fitter in fitters.items():
        cfg = cfgs[out]
        out.mkdir(parents=True, exist_ok=True)
        clear_results(out)  # an earlier run's results never stand under this config.json
        renamed = _renamed(data, names[out])
        write_json(out / "config.json", {**run_record(task, cfg, fitter.head, renamed, entries, device),
                                         "sweep": {"probes_in_pass": len(fitters), "view": names[out]}})
        metrics[out] = write_results(out, task, cfg, fitter.head, renamed, fitter.history(), fitter.best_epoch,
                                     {s: results[s][out] for s in results})
    return metrics


def _build(task: str, cfg: dict[str, Any], name: str, data: FusionData) -> nn.Module:
    """The registry's probe for `cfg`, reading batch key `name` instead of its stream name."""
    head = get_head(cfg["head"], task).build(task, {_stream_name(name): data.shapes[name]}, cfg)
    assert isinstance(head, Probe)
    head.name = name
    return head


def _stream_name(view: str) -> str:
    return view.split("@", 1)[0]


def _renamed(data: FusionData, view: str) -> FusionData:
    """The data as the probe's own run sees it: its one input under its stream name."""
    return FusionData(data.splits, {_stream_name(view): data.shapes[view]}, data.in_memory)
