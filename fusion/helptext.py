"""The help text of the task and head registries (`fuse-train --help`'s epilog), without torch when it can.

`heads_help` prints the built-in heads from `catalogue.BUILTIN_HEADS` while nothing but the built-ins
is in play; once a plugin is (a `--plugin` module, an entry point of `migue.heads` or `migue.tasks`,
a plugin task that built-in heads may fit, a plugin modality's stream, whose probes are heads), it
asks the registry instead, which imports the head files and torch.
"""
from __future__ import annotations

import sys

from migue.cache.streams import streams

from . import plugins
from .catalogue import BUILTIN_HEADS, format_heads
from .tasks import get_task, list_tasks


def only_builtins() -> bool:
    """Whether the built-in heads and tasks are all there is, so that `BUILTIN_HEADS` is the registry's
    whole answer: no plugin module or entry point of heads or tasks loaded, no plugin task (built-in
    heads fitting a test of a Task may fit it), no plugin modality stream (each gets probe heads),
    and the registry not already imported (then asking it costs nothing more than what was paid)."""
    if "migue.fusion.registry" in sys.modules:
        return False
    tasks = list_tasks()  # loads the `migue.heads` and `migue.tasks` entry points first
    return (not plugins.loaded() and all(t.source == "built-in" for t in tasks.values())
            and all(s.source == "built-in" for s in streams().values()))


def heads_help(task: str | None = None) -> str:
    """The heads (all, or those that fit `task`) as aligned text lines for a CLI's --help: from
    `BUILTIN_HEADS` (no torch) when only built-ins are in play, else from the registry."""
    if not only_builtins():
        from .registry import heads_help as registry_help

        return registry_help(task)
    if task is not None:
        get_task(task)  # an unknown task is an error naming the known ones
    return format_heads((h.name, h.tasks, h.description, "built-in") for h in BUILTIN_HEADS
                        if task is None or task in h.tasks)


def tasks_help() -> str:
    """The task registry as aligned text lines (`name  description`), for a CLI's --help; plugin
    tasks say where they come from."""
    tasks = list_tasks()
    width = max(len(n) for n in tasks)
    return "\n".join(f"{n:<{width}}  {t.description}  (default head: {t.default_head})"
                     + ("" if t.source == "built-in" else f"  (plugin: {t.source})") for n, t in tasks.items())
