"""Run configuration: the training defaults, a head's declared settings, overrides; validated."""
from __future__ import annotations

import copy
from typing import Any

from migue.cache.streams import pool_settings

from .registry import get_head
from .settings import Setting, setting_for
from .tasks import get_task

POOL_DEFAULTS, POOL_CHOICES = pool_settings()
DEFAULTS: dict[str, Any] = {
    # what to train (a head's own settings, e.g. cmtf's width, are declared where it registers)
    "head": "auto",                     # registry name; auto: the task's default head (mg: cmtf, emotion: interfusion)
    "num_classes": "auto",              # auto: the task's classes (mg: 32); more: named by their index
    # inputs, pooled at load time: rgb_pool, pose_pool, face_pool, context_pool, declared with each
    # stream by its modality row (pipeline/extraction/modalities.py; migue.cache.streams.pool_settings)
    **POOL_DEFAULTS,
    "max_windows": None,                # emotion: at most this many windows per video (uniform subsample)
    "align": "strict",                  # strict: entries must hold the same units | inner: common units only
    # optimisation
    "epochs": 60,
    "batch_size": 32,                   # items: clips (mg) or videos (emotion)
    "lr": 5e-4,                         # AdamW peak learning rate
    "weight_decay": 0.05,               # on weight matrices only
    "warmup_epochs": 1.0,               # linear warm-up, then cosine decay to 0
    "label_smoothing": 0.1,
    "grad_clip": 1.0,                   # max gradient norm; 0 = off
    "class_balance": "none",            # none | weighted-loss | sampler
    "patience": 15,                     # early stopping: epochs without a better val score; 0 = off
    "monitor": "auto",                  # val metric for checkpointing; auto: the task's (mg: top1, emotion: accuracy)
    "seed": 0,
    # runtime
    "device": "auto",                   # auto (cuda if available) | cpu | cuda | cuda:N
    "amp": True,                        # bf16 autocast on cuda (never on cpu)
    "in_memory": "auto",                # auto | True (hold all tokens) | False (read per batch)
    "memory_budget_gb": 8.0,            # auto holds tokens in memory when they fit this
}

CHOICES: dict[str, tuple[Any, ...]] = {
    **POOL_CHOICES,
    "align": ("strict", "inner"),
    "class_balance": ("none", "weighted-loss", "sampler"),
    "in_memory": ("auto", True, False),
}
_COUNT, _RATE = Setting("int", 1), Setting("number", 0)
RULES: dict[str, Setting] = {  # the type and range of every training key without CHOICES
    "head": Setting("str"), "num_classes": Setting("int", 2), "max_windows": Setting("int", 1, optional=True),
    "epochs": _COUNT, "batch_size": _COUNT, "lr": _RATE, "weight_decay": _RATE, "warmup_epochs": _RATE,
    "label_smoothing": Setting("number", 0, 1, high_open=True), "grad_clip": _RATE, "patience": Setting("int", 0),
    "monitor": Setting("str"), "seed": Setting("int", 0, 2**32 - 1),  # numpy's seeds are 32-bit
    "device": Setting("str"), "amp": Setting("bool"), "memory_budget_gb": _RATE,
}


def config_for(task: str, head: str, config: dict[str, Any]) -> dict[str, Any]:
    """The keys of a shared `config` that `head` reads (training keys and its own settings), for
    one base config used across heads; `head` set."""
    settings = {**get_task(task).settings, **get_head(head, task).settings}
    return {**{k: v for k, v in config.items() if k in DEFAULTS or k in settings}, "head": head}


def resolve_config(task: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The training DEFAULTS and the head's declared settings, merged with `overrides`, 'auto'
    values resolved for `task` (its default head, class count and monitored metric). A key neither a
    training key nor a setting of the head is an error."""
    spec_task = get_task(task)
    overrides = dict(overrides or {})
    head = overrides.get("head", DEFAULTS["head"])
    head = spec_task.default_head if head == "auto" else head
    spec = get_head(head, task)
    unknown = sorted(set(overrides) - set(DEFAULTS) - set(spec.settings) - set(spec_task.settings))
    if unknown:
        own = f"; task {task!r} keys: {', '.join(spec_task.settings)}" if spec_task.settings else ""
        raise KeyError(f"unknown config keys {unknown} for head {head!r}: it reads "
                       f"{', '.join(spec.settings) or 'no settings of its own'}; training keys: {', '.join(DEFAULTS)}"
                       + own)
    cfg = {**DEFAULTS, **copy.deepcopy(dict(spec_task.settings)), **copy.deepcopy(spec.settings), **overrides,
           "head": head}
    if cfg["num_classes"] == "auto":
        cfg["num_classes"] = spec_task.num_classes
    if spec_task.binary and cfg["num_classes"] != 2:
        raise ValueError(f"setting num_classes={cfg['num_classes']!r}: task {task!r} is binary "
                         f"({' / '.join(spec_task.class_names)}), it has 2")
    try:  # types and ranges first: nothing downstream sees batch_size=0 or lr='abc'
        for key, rule in RULES.items():
            rule.check(key, cfg[key])
        for key, default in spec_task.settings.items():  # a task's own keys take their default's type
            setting_for(default).check(key, cfg[key])
        spec.check_settings(cfg)
    except ValueError as exc:
        raise ValueError(f"{exc} (head {head!r})") from None
    if cfg["monitor"] == "auto":
        cfg["monitor"] = spec_task.monitored
    for key, allowed in {**CHOICES, **spec.choices}.items():
        if cfg[key] not in allowed:
            raise ValueError(f"config {key}={cfg[key]!r}: expected one of {allowed}")
    if cfg["monitor"] not in spec_task.metrics:
        raise ValueError(f"monitor {cfg['monitor']!r} is not a {task} metric: expected one of {spec_task.metrics}")
    return cfg
