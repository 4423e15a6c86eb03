"""Run configuration: every default in one dict, merged with overrides and validated."""
from __future__ import annotations

from typing import Any

from .data import TASKS

DEFAULTS: dict[str, Any] = {
    # head
    "head": "auto",                     # registry name; auto: cmtf (mg) / interfusion (emotion)
    "width": 256,                       # model width d; hidden size of mlp probes and concat
    "depth": 2,                         # cmtf transformer / interfusion gated cross-attention layers
    "num_heads": 4,                     # attention heads
    "dropout": 0.1,
    "cmtf_mode": "joint",               # joint: self-attention over all tokens | cross: rgb<->pose
    "modality_dropout": 0.3,            # cmtf: chance per training sample of blanking rgb or pose (0.3: see
                                        # benchmarks/RESULTS.md, 3 seeds: 0.815 ± 0.007 vs 0.606 ± 0.203 at 0)
    "pose_streams": ["joint", "bone"],  # cmtf: 2s-AGCN streams fused with rgb
    "late_probe": "linear",             # late, late-pose: member probes, linear | mlp
    "num_classes": 32,                  # MG classes
    # inputs, pooled at load time
    "rgb_pool": "time",                 # none | time (mean over H'xW' per time step) | space (mean over time per h,w) | mean | cls
    "pose_pool": "space",               # none | time (mean over joints per time step) | space (mean over time per joint) | mean
    "face_pool": "none",                # none (one token per sampled frame) | mean
    "context_pool": "time",             # none | time | mean | cls
    "baseline_pool": "space",           # probes, late, concat: space (mean over time, per-place features
                                        # concatenated: rgb h*w cells, pose joints) | time | mean (one vector)
    "max_windows": None,                # emotion: at most this many windows per video (uniform subsample)
    "align": "strict",                  # strict: entries must hold the same units | inner: common units only
    # optimisation
    "epochs": 60,
    "batch_size": 32,                   # clips (mg) or videos (emotion)
    "lr": 5e-4,                         # AdamW peak learning rate
    "weight_decay": 0.05,               # on weight matrices only
    "warmup_epochs": 1.0,               # linear warm-up, then cosine decay to 0
    "label_smoothing": 0.1,
    "grad_clip": 1.0,                   # max gradient norm; 0 = off
    "class_balance": "none",            # none | weighted-loss | sampler
    "patience": 15,                     # early stopping: epochs without a better val score; 0 = off
    "monitor": "auto",                  # val metric for checkpointing; auto: top1 (mg) / accuracy (emotion)
    "seed": 0,
    # runtime
    "device": "auto",                   # auto (cuda if available) | cpu | cuda | cuda:N
    "amp": True,                        # bf16 autocast on cuda (never on cpu)
    "in_memory": "auto",                # auto | True (hold all tokens) | False (read per batch)
    "memory_budget_gb": 8.0,            # auto holds tokens in memory when they fit this
}

CHOICES: dict[str, tuple[Any, ...]] = {
    "cmtf_mode": ("joint", "cross"),
    "late_probe": ("linear", "mlp"),
    "rgb_pool": ("none", "time", "space", "mean", "cls"),
    "pose_pool": ("none", "time", "space", "mean"),
    "face_pool": ("none", "time", "mean"),
    "context_pool": ("none", "time", "mean", "cls"),
    "baseline_pool": ("space", "time", "mean"),
    "align": ("strict", "inner"),
    "class_balance": ("none", "weighted-loss", "sampler"),
    "in_memory": ("auto", True, False),
}
MONITORS = {"mg": ("top1", "top5", "macro_f1"), "emotion": ("accuracy", "f1", "roc_auc")}


def resolve_config(task: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """DEFAULTS merged with `overrides`, 'auto' values resolved for `task`; unknown keys are errors."""
    if task not in TASKS:
        raise ValueError(f"task {task!r}: expected one of {TASKS}")
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise KeyError(f"unknown config keys {unknown}; known: {', '.join(DEFAULTS)}")
    cfg = {**DEFAULTS, **overrides}
    if cfg["head"] == "auto":
        cfg["head"] = {"mg": "cmtf", "emotion": "interfusion"}[task]
    if cfg["monitor"] == "auto":
        cfg["monitor"] = MONITORS[task][0]
    for key, allowed in CHOICES.items():
        if cfg[key] not in allowed:
            raise ValueError(f"config {key}={cfg[key]!r}: expected one of {allowed}")
    if cfg["monitor"] not in MONITORS[task]:
        raise ValueError(f"monitor {cfg['monitor']!r} is not a {task} metric: expected one of {MONITORS[task]}")
    cfg["pose_streams"] = list(cfg["pose_streams"])
    return cfg
