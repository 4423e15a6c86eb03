"""The head registry (like timm's): `register_head`, and listing, describing, finding heads.

A head is registered with the tasks it fits (names, or a test of a `Task`), the inputs it reads and the settings it declares
(their defaults); it is built as `head(shapes, num_classes, **settings)`:

    from migue.fusion import register_head

    @register_head("mean-concat", tasks=("mg",), inputs=("rgb", "pose"))
    class MeanConcat(nn.Module):
        def __init__(self, shapes: dict[str, tuple[int, int]], num_classes: int, **cfg): ...
        def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor: ...  # logits

`shapes` maps each stream the head reads to (tokens, dim); `batch` holds those streams, (B, L, D)
for a task of clips (mg) and (B, W, L, D) with `mask` (B, W) for a task of videos (emotion: a video's
windows), plus `label`. Logits: (B, num_classes), or (B,) for a binary task (emotion: the head
is built with num_classes 1). The settings are those the head declares (`settings=`, else the
keyword defaults of its `__init__`); `--set` and grids may name only those and the training keys,
and each value must have its default's type and lie in its declared range (`ranges=`; `fusion/settings.py`). A head registered with `trains_members=True`
defines `train_logits(batch)`: a list of logits, each with its own loss (late fusion's members).

Built-in heads register from their own files (`fusion/__init__.py` imports them); user heads
from `--plugin MODULE` (`load_plugins`) or the `migue.heads` entry-point group; tasks
(`fusion/tasks/`) load the same way, and from the `migue.tasks` group. This module imports no head.
"""
from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from migue.cache.streams import get_stream, streams

from .catalogue import format_heads
from .data import Input
from .plugins import load_plugins, plugin_source
from .settings import Setting, setting_for
from .tasks import Task, get_task, registered_tasks

log = logging.getLogger("migue.fusion")

Shapes = dict[str, tuple[int, int]]
InputsFn = Callable[[str, dict[str, Any]], dict[str, Input]]  # (task, config) -> the inputs read
TaskTest = Callable[[Task], bool]  # a head fitting every task that passes it (built-ins fit plugin tasks)

# The streams a head may read come from `migue.cache.streams` (each modality row declares its own,
# built-in or plugin): a head names a stream (rgb, joint, rgb-small) or a modality (pose: all its streams).


def input_names() -> dict[str, tuple[str, ...]]:
    """What a head may name in `inputs=`: a stream (itself) or a modality (all its streams)."""
    table = streams()
    out: dict[str, tuple[str, ...]] = {}
    for stream in table.values():
        out.setdefault(stream.modality, ())
        out[stream.modality] += (stream.name,)
    return {**out, **{name: (name,) for name in table}}


def view(name: str, config: dict[str, Any], pool: str | None = None) -> Input:
    """The Input for stream `name`, pooled as `pool` or as the config says ('cls' = the cls stream;
    a stream without a pooling key of its own is read whole, 'none')."""
    stream = get_stream(name)
    pool = pool or (config[stream.pool_key] if stream.pool_key else "none")
    return Input(stream.modality, "cls", "none") if pool == "cls" else Input(stream.modality, stream.dataset, pool)


@dataclass(frozen=True)
class HeadSpec:
    """A registered head: where it applies, what it reads, its settings, how it is built."""

    name: str
    tasks: tuple[str, ...] | TaskTest  # the task names it fits, or a test of a Task
    description: str
    inputs: InputsFn
    factory: Callable[..., nn.Module]  # (shapes, num_classes, **settings) -> head
    settings: dict[str, Any] = field(default_factory=dict)  # declared settings -> defaults
    choices: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # allowed values of some settings
    source: str = "built-in"  # or the plugin module / entry point that registered it
    trains_members: bool = False  # its `train_logits(batch)` gives one logits tensor per loss term
    rules: dict[str, Setting] = field(default_factory=dict)  # each setting's type and range
    check: Callable[[dict[str, Any]], None] | None = None  # settings that must agree with each other

    def check_settings(self, cfg: dict[str, Any]) -> None:
        """A ValueError naming the first setting of `cfg` outside its type or range (choices are checked
        apart), then the head's own `check` of settings together (width a multiple of num_heads)."""
        for key, rule in self.rules.items():
            if key in cfg and key not in self.choices:
                rule.check(key, cfg[key])
        if self.check is not None:
            self.check(cfg)

    def fits(self, task: str) -> bool:
        """Whether the head applies to the registered task `task`."""
        if callable(self.tasks):
            known = registered_tasks()
            return task in known and bool(self.tasks(known[task]))
        return task in self.tasks

    def task_names(self) -> list[str]:
        """The registered tasks it fits, for help and messages."""
        return [t for t in registered_tasks() if self.fits(t)]

    def build(self, task: str, shapes: Shapes, cfg: dict[str, Any]) -> nn.Module:
        """The head for `task` on inputs of `shapes`, with its settings taken from `cfg`."""
        return self.factory(dict(shapes), num_outputs(task, cfg), **{k: cfg[k] for k in self.settings})

    def loss_terms(self, head: nn.Module, batch: dict[str, Any]) -> list[Any]:
        """The logits each loss term is computed on: `train_logits` where the head has it."""
        return head.train_logits(batch) if self.trains_members else [head(batch)]


_HEADS: dict[str, HeadSpec] = {}


def num_outputs(task: str, cfg: dict[str, Any]) -> int:
    """Logits per item: one per class, or one (the positive class) for a binary task."""
    return 1 if get_task(task).binary else int(cfg["num_classes"])


def register_head(name: str, tasks: Sequence[str] | TaskTest, inputs: Sequence[str] | InputsFn, *,
                  settings: dict[str, Any] | None = None, description: str | None = None,
                  choices: dict[str, tuple[Any, ...]] | None = None,
                  trains_members: bool = False,
                  ranges: dict[str, Setting | tuple[float | None, float | None]] | None = None,
                  check: Callable[[dict[str, Any]], None] | None = None, source: str | None = None
                  ) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a head class (or factory) `fn(shapes, num_classes, **settings)`.

    `tasks` names the tasks it fits, or is a test `Task -> bool` (it then fits tasks registered
    later too, plugins included). `inputs` names what it reads (entry roles 'rgb', 'pose', 'face', 'context' or streams
    'joint', 'bone'), pooled as the training config says; a function `(task, config) -> {name:
    Input}` chooses them itself. `settings` (default: the keyword defaults of `fn`) are the
    only head keys a config may set for it; each takes the type of its default, and `ranges`
    bounds some: `{"width": (1, None)}` (closed; None = unbounded) or a `Setting`. `check(cfg)`
    raises a ValueError sentence when settings disagree with each other (run once each is in range).
    `source` (default: from `fn`'s module) names the plugin a run of the head needs: a head made for a
    plugin modality's stream (its probes) needs that plugin."""
    known = registered_tasks()
    if not callable(tasks):
        tasks = tuple(tasks)
        bad = [t for t in tasks if t not in known]
        if bad or not tasks:
            raise ValueError(f"head {name!r}: tasks {list(tasks)} must be among the registered tasks {list(known)}")
    if callable(inputs):
        read: InputsFn = inputs
    else:
        names = tuple(inputs)
        known_inputs = input_names()
        unknown = [n for n in names if n not in known_inputs]
        if unknown or not names:
            raise ValueError(f"head {name!r}: unknown inputs {unknown or list(names)}; a head reads some of "
                             f"{', '.join(known_inputs)}")
        for task in () if callable(tasks) else tasks:
            wrong = [s for n in names for s in known_inputs[n] if s not in known[task].streams]
            if wrong:
                raise ValueError(f"head {name!r}: task {task!r} has no input {wrong[0]!r} "
                                 f"(it has {', '.join(known[task].streams)})")
        read_streams = [s for n in names for s in known_inputs[n]]

        def read(task: str, cfg: dict[str, Any]) -> dict[str, Input]:
            return {s: view(s, cfg) for s in read_streams}

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _load_builtins()  # a plugin's heads come after the built-in ones
        if name in _HEADS:
            raise ValueError(f"head {name!r} is registered twice ({_HEADS[name].source} and {fn.__module__})")
        declared = dict(settings) if settings is not None else _keyword_defaults(fn)
        unknown = sorted(set(ranges or {}) - set(declared))
        if unknown:
            raise ValueError(f"head {name!r}: ranges for {unknown}, which are not among its settings {sorted(declared)}")
        try:
            rules = {k: setting_for(v, (ranges or {}).get(k)) for k, v in declared.items()}
        except ValueError as exc:
            raise ValueError(f"head {name!r}: {exc}") from None
        text = description or (inspect.getdoc(fn) or name).splitlines()[0]
        # a plugin's source is what `load_plugins` takes back: its module name, or its file's path
        origin = source or plugin_source(fn.__module__)
        _HEADS[name] = HeadSpec(name, tasks, text, read, fn, declared, dict(choices or {}), origin, trains_members,
                                rules, check)
        return fn

    return wrap


# the built-in head files, in the order `heads_help` lists them (detection, online.probe: the online task's);
# catalogue.BUILTIN_HEADS describes their heads without importing them (fuse-train --help)
BUILTINS = ("cmtf", "interfusion", "baselines", "detection", "online.probe")
_builtins_loaded = False


def _load_builtins() -> None:
    """Import the built-in head files once (each registers its heads), before any lookup or plugin
    registration, so that importing `migue.fusion` alone (a command's --help) needs no torch."""
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True  # first: their own register_head calls come back here
    for module in BUILTINS:
        importlib.import_module(f"{__package__}.{module}")


def _keyword_defaults(fn: Callable[..., Any]) -> dict[str, Any]:
    """The parameters of `fn` after (shapes, num_classes) that have defaults: its settings."""
    params = list(inspect.signature(fn).parameters.values())[2:]
    return {p.name: p.default for p in params
            if p.default is not inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def get_head(name: str, task: str | None = None) -> HeadSpec:
    """The spec of head `name`; with `task`, an error if the head does not fit it."""
    _load_builtins()
    load_plugins()
    if name not in _HEADS:
        raise KeyError(f"unknown head {name!r}; known heads: {', '.join(_HEADS)} "
                       "(a plugin head needs --plugin MODULE or a `plugins:` grid key)")
    spec = _HEADS[name]
    if task is not None and not spec.fits(get_task(task).name):
        raise ValueError(f"head {name!r} does not fit task {task!r} (it is for: {', '.join(spec.task_names())}); "
                         f"heads for {task}: {', '.join(list_heads(task)) or 'none registered'}")
    return spec


def list_heads(task: str | None = None) -> dict[str, str]:
    """Head name -> one-line description, for all heads or those that fit `task`."""
    if task is not None:
        get_task(task)  # an unknown task is an error naming the known ones
    _load_builtins()
    load_plugins()
    return {n: s.description for n, s in _HEADS.items() if task is None or s.fits(task)}


def heads_help(task: str | None = None) -> str:
    """The registry as aligned text lines (`name  [tasks]  description`), for a CLI's --help;
    plugin heads say where they come from (`helptext.heads_help` answers without torch when only
    the built-in heads are in play)."""
    return format_heads((n, _HEADS[n].task_names(), d, _HEADS[n].source) for n, d in list_heads(task).items())
