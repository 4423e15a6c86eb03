"""What a task is, as one object, and the task registry (like the head registry).

A `Task` declares everything stage two asks about a task: the cache unit kind its items are built
from and how units become items (`items`), where a unit's target is read (`labels`), its classes,
its loss, its metrics and the monitored one, its default head, the entry roles and streams it
reads, the report figures of a run, and the submission formats `migue predict` can write. Code asks
the task (`get_task(name).unit_kind`), never `if task == ...`.

    from migue.fusion.tasks import Task, register_task

    register_task(Task("mg3", "three coarse MG groups", unit_kind="mg", items="clip",
                       labels=lambda units: units["mg_label"] % 3, class_names=("a", "b", "c"), ...))

Built-in tasks register from their own files (`mg.py`, `emotion.py`, `online.py`); user tasks from
`--plugin MODULE` or the `migue.tasks` entry-point group (`migue.fusion.load_plugins`, in
fusion/plugins.py). This module imports neither torch nor a head.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..plugins import load_plugins, plugin_source

ITEMS = ("clip", "video", "sequence")  # one unit each | a video's units, one label | a video's windows, segments
LOSSES = ("cross-entropy", "binary-cross-entropy", "detection")
LabelSource = str | Callable[[pd.DataFrame], Any]  # a unit-table column, or units -> one target per unit


@dataclass(frozen=True)
class SubmissionFormat:
    """A file `migue predict --format NAME` writes for a task: which writer (`pipeline/cli/submission.py`
    knows them by this name), the file's name inside `--zip`, its columns and what one row is."""

    writer: str                  # e.g. "miga-track1"
    title: str                   # e.g. "Track 1"
    file_name: str               # the CSV's name inside the zip
    columns: tuple[str, ...]     # the CSV's header
    row: str = "item"            # what one row is, for messages: "test clip", "test video"


@dataclass(frozen=True)
class Task:
    """One task of stage two (see the module docstring); frozen: registered once, read everywhere."""

    name: str
    description: str                      # one line, shown by `fuse-train --help`
    unit_kind: str                        # cache unit kind the items are built from (cache/units.py)
    items: str                            # one of ITEMS
    labels: LabelSource                   # where a unit's target is read (-1 or below: unknown)
    class_names: tuple[str, ...]          # class index -> name (the classes' count is their number)
    loss: str                             # one of LOSSES
    metrics: tuple[str, ...]              # scalar metrics reported; each may be monitored
    default_head: str                     # the head `--fusion` defaults to (registry name)
    modalities: tuple[str, ...]           # entry roles it reads, in order (a head reads some of them)
    streams: tuple[str, ...]              # streams of those entries a head may read
    monitor: str = ""                     # the metric early stopping follows by default (empty: the first)
    details: tuple[str, ...] = ()         # non-scalar metrics also reported (per-class lists)
    figures: tuple[str, ...] = ("curves", "confusion", "per_class")  # report files a run writes
    submissions: Mapping[str, SubmissionFormat] = field(default_factory=dict)  # --format name -> format
    title: str = ""                       # heading of the task's results in summaries (default: description)
    entry_classes: str = ""               # entry-config key naming the dataset's classes where they vary
    settings: Mapping[str, Any] = field(default_factory=dict)  # the task's own config keys -> defaults (--set)
    runner: str = ""                      # module training, evaluating and predicting its runs; "" = fusion/runs.py's
    source: str = "built-in"              # or the plugin module / entry point that registered it

    def __post_init__(self) -> None:
        where = f"task {self.name!r}"
        if self.items not in ITEMS:
            raise ValueError(f"{where}: items {self.items!r} must be one of {ITEMS}")
        if self.loss not in LOSSES:
            raise ValueError(f"{where}: loss {self.loss!r} must be one of {LOSSES}")
        if len(self.class_names) < 2 or len(set(self.class_names)) != len(self.class_names):
            raise ValueError(f"{where}: needs at least two distinct class names, got {list(self.class_names)}")
        if self.loss == "binary-cross-entropy" and len(self.class_names) != 2:
            raise ValueError(f"{where}: a binary loss needs exactly two classes, got {len(self.class_names)}")
        if not self.metrics:
            raise ValueError(f"{where}: declares no metrics")
        if self.monitor and self.monitor not in self.metrics:
            raise ValueError(f"{where}: monitor {self.monitor!r} is not among its metrics {list(self.metrics)}")
        if not self.modalities or not self.streams:
            raise ValueError(f"{where}: names no modalities or streams it reads")
        if self.items == "sequence" and not self.runner:
            raise ValueError(f"{where}: a task of whole sequences names the module that trains it (runner=)")
        if not (isinstance(self.labels, str) or callable(self.labels)):
            raise ValueError(f"{where}: labels must be a unit-table column name or a function of the unit table")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def binary(self) -> bool:
        """One logit per item (the second class is the positive one), not one per class."""
        return self.loss == "binary-cross-entropy"

    @property
    def monitored(self) -> str:
        """The metric early stopping follows unless the config names another."""
        return self.monitor or self.metrics[0]

    @property
    def heading(self) -> str:
        return self.title or self.description

    def names(self, num_classes: int | None = None) -> list[str]:
        """The names of the first `num_classes` classes (default: all); beyond the named: their index."""
        n = self.num_classes if num_classes is None else num_classes
        return [self.class_names[i] if i < self.num_classes else str(i) for i in range(n)]

    def classes_of(self, entry_configs: Mapping[str, Mapping[str, Any]]) -> tuple[str, ...]:
        """The class names the entries record under `entry_classes` (they must agree), else the declared."""
        if not self.entry_classes:
            return self.class_names
        found = {tuple(c[self.entry_classes]) for c in entry_configs.values() if c.get(self.entry_classes)}
        if len(found) > 1:
            raise ValueError(f"task {self.name!r}: the entries name different classes ({self.entry_classes}): "
                             f"{sorted(found)}")
        return found.pop() if found else self.class_names

    def unit_labels(self, units: pd.DataFrame) -> np.ndarray:
        """Each unit's target (int64; -1 unknown) from the unit table, as `labels` says."""
        if isinstance(self.labels, str):
            if self.labels not in units:
                raise KeyError(f"task {self.name!r} reads labels from column {self.labels!r}, which the units "
                               f"lack (columns: {', '.join(map(str, units.columns))})")
            values = units[self.labels]
        else:
            values = self.labels(units)
        out = np.asarray(values, dtype=np.int64).reshape(-1)
        if len(out) != len(units):
            raise ValueError(f"task {self.name!r}: its labels gave {len(out)} values for {len(units)} units")
        return np.where(out < 0, -1, out)

    def run_module(self) -> Any:
        """The module that trains, evaluates and predicts this task's runs (`train_run`, `evaluate_run`,
        `predict_run`, `online_report`-like `report`), or None: the clip/video loop of fusion/runs.py. A
        task of whole sequences (items 'sequence') trains its own way: data, loss and evaluation there."""
        if not self.runner:
            return None
        import importlib

        return importlib.import_module(self.runner)

    def submission(self, fmt: str) -> SubmissionFormat:
        """The submission format `fmt`, or a LookupError naming the formats the task has."""
        if fmt not in self.submissions:
            raise LookupError(f"task {self.name!r} has no submission format {fmt!r}; it writes: "
                              f"{', '.join(self.submissions) or 'none'}")
        return self.submissions[fmt]


class UnknownTaskError(LookupError):
    """A task name no module registered; the message lists the known ones."""


class TaskNotReadyError(LookupError):
    """A part a task names (its loader, loss, metric or writer) that this version does not have yet."""


_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Register `task` under its name (twice is an error); returns it. A plugin's source is recorded
    by `load_plugins` so that a run of it names the plugin it needs."""
    if not isinstance(task, Task):
        raise TypeError(f"register_task takes a Task, got {type(task).__name__}")
    if task.name in _TASKS:
        raise ValueError(f"task {task.name!r} is registered twice ({_TASKS[task.name].source} and {task.source})")
    module = _caller_module()
    if task.source == "built-in" and not module.startswith("migue.fusion"):
        task = _replace_source(task, plugin_source(module))
    _TASKS[task.name] = task
    return task


def _caller_module() -> str:
    import inspect

    frame = inspect.currentframe()
    caller = frame.f_back.f_back if frame is not None and frame.f_back is not None else None
    return str(caller.f_globals.get("__name__", "")) if caller is not None else ""


def _replace_source(task: Task, source: str) -> Task:
    from dataclasses import replace

    return replace(task, source=source)


def get_task(name: str) -> Task:
    """The registered task `name` (plugins of the entry-point groups loaded first)."""
    load_plugins()
    if name not in _TASKS:
        raise UnknownTaskError(f"unknown task {name!r}; known tasks: {', '.join(_TASKS)} "
                               "(a plugin task needs --plugin MODULE or a `plugins:` grid key)")
    return _TASKS[name]


def list_tasks() -> dict[str, Task]:
    """Task name -> Task, every registered one, in registration order."""
    load_plugins()
    return dict(_TASKS)


def registered_tasks() -> dict[str, Task]:
    """The tasks registered so far, without loading plugins (for registration-time checks)."""
    return dict(_TASKS)
