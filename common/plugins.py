"""Importing user code named by `--plugin MODULE` (a module name, or a path to a .py file), once per
process. Heads, tasks and modality rows all load through here (`migue.fusion.load_plugins` adds the
heads' and tasks' entry-point groups), and so does a Dask worker running an extraction shard, so a
plugin file gets the same module name everywhere and what it defines pickles between them."""
from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path

_IMPORTED: set[str] = set()  # the modules (or files) given to `import_plugins` so far, as given
_FILE_MODULES: dict[str, str] = {}  # module name given to a plugin file -> the file's absolute path


def plugin_file(module: str) -> str | None:
    """The absolute path of the plugin file imported as `module` (None: not a plugin file)."""
    return _FILE_MODULES.get(module)


def imported_plugins() -> list[str]:
    """The modules and files `import_plugins` has imported in this process, as given."""
    return sorted(_IMPORTED)


def import_plugins(modules: Iterable[str]) -> list[str]:
    """Import each module name or .py file not imported yet (a file as module `migue_plugin_<stem>`);
    returns those imported now. One that cannot be imported is an ImportError naming it."""
    done = []
    for module in modules:
        if module in _IMPORTED:
            continue
        _import_plugin(module)
        _IMPORTED.add(module)
        done.append(module)
    return done


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
