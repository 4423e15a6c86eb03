"""Loading user code that registers heads or tasks: `--plugin MODULE` (a module name or a .py file)
and the `migue.heads` / `migue.tasks` entry-point groups. Kept apart from both registries, which
call it, so that neither imports the other to find their plugins."""
from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

log = logging.getLogger("migue.fusion")

ENTRY_POINT_GROUP = "migue.heads"
ENTRY_POINT_GROUPS = (ENTRY_POINT_GROUP, "migue.tasks")  # what `load_plugins` imports by itself
_LOADED: set[str] = set()  # plugin modules and entry points already imported
_FILE_MODULES: dict[str, str] = {}  # module name given to a plugin file -> the file's absolute path


def plugin_source(module: str) -> str:
    """Who registered something from `module`: 'built-in', or what `load_plugins` takes back (a
    plugin's module name, or its file's path)."""
    if module.startswith("migue.fusion"):
        return "built-in"
    return _FILE_MODULES.get(module, module)


def load_plugins(modules: Iterable[str] = ()) -> list[str]:
    """Import user modules that register heads or tasks (a module name, or a path to a .py file), and
    those other packages publish in the `migue.heads` and `migue.tasks` entry-point groups; returns
    what was loaded."""
    loaded = []
    for module in modules:
        if module in _LOADED:
            continue
        _import_plugin(module)
        _LOADED.add(module)
        loaded.append(module)
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
