"""Loading user code that registers heads or tasks: `--plugin MODULE` (a module name or a .py file)
and the `migue.heads` / `migue.tasks` entry-point groups. Kept apart from both registries, which
call it, so that neither imports the other to find their plugins."""
from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib import metadata

from migue.common.plugins import import_plugins, imported_plugins, plugin_file

log = logging.getLogger("migue.fusion")

ENTRY_POINT_GROUP = "migue.heads"
ENTRY_POINT_GROUPS = (ENTRY_POINT_GROUP, "migue.tasks")  # what `load_plugins` imports by itself
_LOADED: set[str] = set()  # entry points already imported


def plugin_source(module: str) -> str:
    """Who registered something from `module`: 'built-in', or what `load_plugins` takes back (a
    plugin's module name, or its file's path)."""
    if module.startswith("migue.fusion"):
        return "built-in"
    return plugin_file(module) or module


def loaded() -> list[str]:
    """What `load_plugins` has imported so far: plugin modules and files, and `entry-point:<value>` keys."""
    return sorted(_LOADED | set(imported_plugins()))


def load_plugins(modules: Iterable[str] = ()) -> list[str]:
    """Import user modules that register heads or tasks (a module name, or a path to a .py file), and
    those other packages publish in the `migue.heads` and `migue.tasks` entry-point groups; returns
    what was loaded."""
    loaded = import_plugins(modules)  # the files and modules named: common/plugins.py
    for point in (p for group in ENTRY_POINT_GROUPS for p in metadata.entry_points(group=group)):
        key = f"entry-point:{point.value}"
        if key in _LOADED:
            continue
        _LOADED.add(key)
        try:
            point.load()
        except Exception as exc:  # one broken package must not hide the built-in heads and tasks
            log.warning("plugin %s (%s, %s) failed to load: %s", point.name, point.group, point.value, exc)
            continue
        loaded.append(key)
    return loaded

