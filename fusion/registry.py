"""One registry of fusion heads by name (like timm's create_model): list, describe, build.

A head declares the tasks it fits, the inputs it reads (entry role, stream, pooling;
see data.Input) and a factory from the pooled input shapes and the config.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from .baselines import Concat, Late, Probe
from .cmtf import CMTF
from .config import resolve_config
from .data import TASKS, Input
from .interfusion import InterFusion

Shapes = dict[str, tuple[int, int]]

# input name -> (entry role, stream, config key of its pooling)
STREAMS = {
    "rgb": ("rgb", "tokens", "rgb_pool"),
    "joint": ("pose", "joint", "pose_pool"),
    "bone": ("pose", "bone", "pose_pool"),
    "face": ("face", "embedding", "face_pool"),
    "context": ("context", "tokens", "context_pool"),
}
MODALITIES = {"mg": ["rgb", "joint", "bone"], "emotion": ["face", "context"]}
PROBE_TARGETS = {"rgb": "rgb", "pose-joint": "joint", "pose-bone": "bone", "face": "face", "context": "context"}


def view(name: str, config: dict[str, Any], pool: str | None = None) -> Input:
    """The Input for stream `name`, pooled as `pool` or as the config says ('cls' = the cls stream)."""
    role, stream, key = STREAMS[name]
    pool = pool or config[key]
    return Input(role, "cls", "none") if pool == "cls" else Input(role, stream, pool)


@dataclass(frozen=True)
class HeadSpec:
    """A registered head: where it applies, what it reads, how it is built."""

    name: str
    tasks: tuple[str, ...]
    description: str
    inputs: Callable[[str, dict[str, Any]], dict[str, Input]]       # (task, config) -> inputs
    build: Callable[[str, Shapes, dict[str, Any]], nn.Module]        # (task, shapes, config) -> head


def _outputs(task: str, config: dict[str, Any]) -> int:
    return int(config["num_classes"]) if task == "mg" else 1


def _flat(shape: tuple[int, int]) -> int:
    """Features a baseline sees per unit: all L pooled tokens of D, concatenated."""
    return shape[0] * shape[1]


def _probe(name: str, kind: str, task: str, shapes: Shapes, config: dict[str, Any]) -> Probe:
    return Probe(name, _flat(shapes[name]), _outputs(task, config), kind, config["width"], config["dropout"])


def _probe_spec(target: str, kind: str) -> HeadSpec:
    name = PROBE_TARGETS[target]
    task = "mg" if name in MODALITIES["mg"] else "emotion"
    what = "windows averaged per video" if task == "emotion" else "clip"
    return HeadSpec(
        f"probe-{kind}-{target}", (task,),
        f"{kind} probe on pooled {target} features ({what})",
        lambda task, cfg: {name: view(name, cfg, cfg["baseline_pool"])},
        lambda task, shapes, cfg: _probe(name, kind, task, shapes, cfg))


def _late_spec(name: str, members: dict[str, list[str]], description: str) -> HeadSpec:
    return HeadSpec(
        name, tuple(members), description,
        lambda task, cfg: {m: view(m, cfg, cfg["baseline_pool"]) for m in members[task]},
        lambda task, shapes, cfg: Late([_probe(m, cfg["late_probe"], task, shapes, cfg) for m in members[task]]))


def _cmtf(task: str, shapes: Shapes, cfg: dict[str, Any]) -> CMTF:
    return CMTF(shapes, cfg["num_classes"], tuple(cfg["pose_streams"]), cfg["width"], cfg["depth"],
                cfg["num_heads"], cfg["dropout"], cfg["cmtf_mode"], cfg["modality_dropout"])


HEADS: dict[str, HeadSpec] = {spec.name: spec for spec in [
    HeadSpec("cmtf", ("mg",),
             "Cross-Modal Token Fusion: rgb + pose (joint, bone) tokens, transformer over a fusion [CLS] "
             "(cmtf_mode joint | cross)",
             lambda task, cfg: {n: view(n, cfg) for n in ["rgb", *cfg["pose_streams"]]}, _cmtf),
    HeadSpec("interfusion", ("emotion",),
             "InterFusion: gated bidirectional face<->context cross-attention per window, "
             "attention pooling over a video's windows",
             lambda task, cfg: {n: view(n, cfg) for n in MODALITIES["emotion"]},
             lambda task, shapes, cfg: InterFusion(shapes, cfg["width"], cfg["depth"], cfg["num_heads"],
                                                   cfg["dropout"])),
    _late_spec("late", MODALITIES, "late fusion: average of per-modality probe scores "
                                   "(mg: rgb, joint, bone; emotion: face, context)"),
    _late_spec("late-pose", {"mg": ["joint", "bone"]},
               "classic 2s-AGCN ensemble: average of joint and bone probe scores"),
    HeadSpec("concat", TASKS, "concatenated pooled features of all modalities -> MLP",
             lambda task, cfg: {m: view(m, cfg, cfg["baseline_pool"]) for m in MODALITIES[task]},
             lambda task, shapes, cfg: Concat({n: _flat(s) for n, s in shapes.items()}, _outputs(task, cfg),
                                              cfg["width"], cfg["dropout"])),
    *[_probe_spec(target, kind) for target in PROBE_TARGETS for kind in ("linear", "mlp")],
]}


def get_head(name: str, task: str | None = None) -> HeadSpec:
    """The spec of head `name`; with `task`, an error if the head does not fit it."""
    if name not in HEADS:
        raise KeyError(f"unknown head {name!r}; known heads: {', '.join(HEADS)}")
    spec = HEADS[name]
    if task is not None and task not in spec.tasks:
        raise ValueError(f"head {name!r} does not fit task {task!r} (it is for: {', '.join(spec.tasks)}); "
                         f"heads for {task}: {', '.join(list_heads(task))}")
    return spec


def list_heads(task: str | None = None) -> dict[str, str]:
    """Head name -> one-line description, for all heads or those that fit `task`."""
    if task is not None and task not in TASKS:
        raise ValueError(f"task {task!r}: expected one of {TASKS}")
    return {n: s.description for n, s in HEADS.items() if task is None or task in s.tasks}


def heads_help(task: str | None = None) -> str:
    """The registry as aligned text lines (`name  [tasks]  description`), for a CLI's --help."""
    width = max(len(n) for n in HEADS)
    return "\n".join(f"{n:<{width}}  [{','.join(HEADS[n].tasks)}]  {d}" for n, d in list_heads(task).items())


def head_inputs(name: str, task: str, config: dict[str, Any] | None = None) -> dict[str, Input]:
    """The inputs head `name` reads for `task` under `config` (defaults for keys not given)."""
    spec = get_head(name, task)
    return spec.inputs(task, resolve_config(task, {**(config or {}), "head": name}))


def build_head(name: str, task: str, shapes: Shapes, config: dict[str, Any] | None = None) -> nn.Module:
    """Build head `name` for `task` from the pooled input shapes {input: (L, D)}; config keys
    not given take their defaults (config.DEFAULTS)."""
    spec = get_head(name, task)
    return spec.build(task, shapes, resolve_config(task, {**(config or {}), "head": name}))
