"""The head registry (like timm's): `register_head`, and listing, describing, finding heads.

A head is registered with the tasks it fits, the inputs it reads and the settings it declares
(their defaults); it is built as `head(shapes, num_classes, **settings)`:

    from migue.fusion import register_head

    @register_head("mean-concat", tasks=("mg",), inputs=("rgb", "pose"))
    class MeanConcat(nn.Module):
        def __init__(self, shapes: dict[str, tuple[int, int]], num_classes: int, **cfg): ...
        def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor: ...  # logits

`shapes` maps each stream the head reads to (tokens, dim); `batch` holds those streams, (B, L, D)
for mg and (B, W, L, D) with `mask` (B, W) for emotion (a video's windows), plus `label`.
Logits: (B, num_classes) for mg, (B,) for emotion (num_classes is 1). The settings are those
the head declares (`settings=`, else the keyword defaults of its `__init__`); `--set` and grids
may name only those and the training keys, and each value must have its default's type and lie in
its declared range (`ranges=`; `fusion/settings.py`). A head registered with `trains_members=True`
defines `train_logits(batch)`: a list of logits, each with its own loss (late fusion's members).

Built-in heads register from their own files (`fusion/__init__.py` imports them); user heads
from `--plugin MODULE` (`load_plugins`) or the `migue.heads` entry-point group. This module
imports no head.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from torch import nn

from .data import TASKS, Input
from .settings import Setting, setting_for

log = logging.getLogger("migue.fusion")

Shapes = dict[str, tuple[int, int]]
InputsFn = Callable[[str, dict[str, Any]], dict[str, Input]]  # (task, config) -> the inputs read
ENTRY_POINT_GROUP = "migue.heads"

# stream name -> (entry role, stream in the entry, config key of its pooling)
STREAMS = {
    "rgb": ("rgb", "tokens", "rgb_pool"),
    "joint": ("pose", "joint", "pose_pool"),
    "bone": ("pose", "bone", "pose_pool"),
    "face": ("face", "embedding", "face_pool"),
    "context": ("context", "tokens", "context_pool"),
}
# what a head may name in `inputs=`: an entry role (all its streams) or one stream
INPUT_NAMES = {"rgb": ("rgb",), "pose": ("joint", "bone"), "joint": ("joint",), "bone": ("bone",),
               "face": ("face",), "context": ("context",)}
TASK_STREAMS = {"mg": ("rgb", "joint", "bone"), "emotion": ("face", "context")}


def view(name: str, config: dict[str, Any], pool: str | None = None) -> Input:
    """The Input for stream `name`, pooled as `pool` or as the config says ('cls' = the cls stream)."""
    role, stream, key = STREAMS[name]
    pool = pool or config[key]
    return Input(role, "cls", "none") if pool == "cls" else Input(role, stream, pool)


@dataclass(frozen=True)
class HeadSpec:
    """A registered head: where it applies, what it reads, its settings, how it is built."""

    name: str
    tasks: tuple[str, ...]
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

    def build(self, task: str, shapes: Shapes, cfg: dict[str, Any]) -> nn.Module:
        """The head for `task` on inputs of `shapes`, with its settings taken from `cfg`."""
        return self.factory(dict(shapes), num_outputs(task, cfg), **{k: cfg[k] for k in self.settings})

    def loss_terms(self, head: nn.Module, batch: dict[str, Any]) -> list[Any]:
        """The logits each loss term is computed on: `train_logits` where the head has it."""
        return head.train_logits(batch) if self.trains_members else [head(batch)]


_HEADS: dict[str, HeadSpec] = {}
_LOADED: set[str] = set()  # plugin modules and entry points already imported
_FILE_MODULES: dict[str, str] = {}  # module name given to a plugin file -> the file's absolute path


def num_outputs(task: str, cfg: dict[str, Any]) -> int:
    """Logits per item: the MG classes, or one (win) for emotion."""
    return int(cfg["num_classes"]) if task == "mg" else 1


def register_head(name: str, tasks: Sequence[str], inputs: Sequence[str] | InputsFn, *,
                  settings: dict[str, Any] | None = None, description: str | None = None,
                  choices: dict[str, tuple[Any, ...]] | None = None,
                  trains_members: bool = False,
                  ranges: dict[str, Setting | tuple[float | None, float | None]] | None = None,
                  check: Callable[[dict[str, Any]], None] | None = None
                  ) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a head class (or factory) `fn(shapes, num_classes, **settings)`.

    `inputs` names what it reads (entry roles 'rgb', 'pose', 'face', 'context' or streams
    'joint', 'bone'), pooled as the training config says; a function `(task, config) -> {name:
    Input}` chooses them itself. `settings` (default: the keyword defaults of `fn`) are the
    only head keys a config may set for it; each takes the type of its default, and `ranges`
    bounds some: `{"width": (1, None)}` (closed; None = unbounded) or a `Setting`. `check(cfg)`
    raises a ValueError sentence when settings disagree with each other (run once each is in range)."""
    tasks = tuple(tasks)
    bad = [t for t in tasks if t not in TASKS]
    if bad or not tasks:
        raise ValueError(f"head {name!r}: tasks {list(tasks)} must be among {TASKS}")
    if callable(inputs):
        read: InputsFn = inputs
    else:
        names = tuple(inputs)
        unknown = [n for n in names if n not in INPUT_NAMES]
        if unknown or not names:
            raise ValueError(f"head {name!r}: unknown inputs {unknown or list(names)}; a head reads some of "
                             f"{', '.join(INPUT_NAMES)}")
        for task in tasks:
            wrong = [s for n in names for s in INPUT_NAMES[n] if s not in TASK_STREAMS[task]]
            if wrong:
                raise ValueError(f"head {name!r}: task {task!r} has no input {wrong[0]!r} "
                                 f"(it has {', '.join(TASK_STREAMS[task])})")
        streams = [s for n in names for s in INPUT_NAMES[n]]

        def read(task: str, cfg: dict[str, Any]) -> dict[str, Input]:
            return {s: view(s, cfg) for s in streams}

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
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
        source = "built-in" if fn.__module__.startswith("migue.fusion") else _FILE_MODULES.get(fn.__module__,
                                                                                              fn.__module__)
        _HEADS[name] = HeadSpec(name, tasks, text, read, fn, declared, dict(choices or {}), source, trains_members,
                                rules, check)
        return fn

    return wrap


def _keyword_defaults(fn: Callable[..., Any]) -> dict[str, Any]:
    """The parameters of `fn` after (shapes, num_classes) that have defaults: its settings."""
    params = list(inspect.signature(fn).parameters.values())[2:]
    return {p.name: p.default for p in params
            if p.default is not inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def load_plugins(modules: Iterable[str] = ()) -> list[str]:
    """Import user modules that register heads (a module name, or a path to a .py file), and the
    heads other packages publish in the `migue.heads` entry-point group; returns what was loaded."""
    loaded = []
    for module in modules:
        if module in _LOADED:
            continue
        _import_plugin(module)
        _LOADED.add(module)
        loaded.append(module)
    for point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        key = f"entry-point:{point.value}"
        if key in _LOADED:
            continue
        _LOADED.add(key)
        try:
            point.load()
        except Exception as exc:  # one broken package must not hide the built-in heads
            log.warning("head plugin %s (%s) failed to load: %s", point.name, point.value, exc)
            continue
        loaded.append(key)
    return loaded


def _import_plugin(module: str) -> None:
    path = Path(module)
    try:
        if module.endswith(".py") or path.is_file():
            if not path.is_file():
                raise FileNotFoundError(f"no such file {path}")
            spec = importlib.util.spec_from_file_location(f"migue_plugin_{path.stem}", path)
            assert spec is not None and spec.loader is not None
            loaded = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = loaded
            _FILE_MODULES[spec.name] = str(path.resolve())
            spec.loader.exec_module(loaded)
        else:
            importlib.import_module(module)
    except Exception as exc:
        raise ImportError(f"--plugin {module}: cannot import it ({type(exc).__name__}: {exc})") from exc


def get_head(name: str, task: str | None = None) -> HeadSpec:
    """The spec of head `name`; with `task`, an error if the head does not fit it."""
    load_plugins()
    if name not in _HEADS:
        raise KeyError(f"unknown head {name!r}; known heads: {', '.join(_HEADS)} "
                       "(a plugin head needs --plugin MODULE or a `plugins:` grid key)")
    spec = _HEADS[name]
    if task is not None and task not in spec.tasks:
        raise ValueError(f"head {name!r} does not fit task {task!r} (it is for: {', '.join(spec.tasks)}); "
                         f"heads for {task}: {', '.join(list_heads(task))}")
    return spec


def list_heads(task: str | None = None) -> dict[str, str]:
    """Head name -> one-line description, for all heads or those that fit `task`."""
    if task is not None and task not in TASKS:
        raise ValueError(f"task {task!r}: expected one of {TASKS}")
    load_plugins()
    return {n: s.description for n, s in _HEADS.items() if task is None or task in s.tasks}


def heads_help(task: str | None = None) -> str:
    """The registry as aligned text lines (`name  [tasks]  description`), for a CLI's --help;
    plugin heads say where they come from."""
    heads = list_heads(task)
    width = max(len(n) for n in heads)
    return "\n".join(f"{n:<{width}}  [{','.join(_HEADS[n].tasks)}]  {d}"
                     + ("" if _HEADS[n].source == "built-in" else f"  (plugin: {_HEADS[n].source})")
                     for n, d in heads.items())
