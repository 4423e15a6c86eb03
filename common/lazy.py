"""Lazy package attributes: a package `__init__` names where its public names live and imports each
on first use (PEP 562 `__getattr__`), so that importing the package (a command's --help) stays light."""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, where: Mapping[str, str], cache: dict[str, Any] | None = None
                 ) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: a name in `where` (name -> module, relative with a leading
    dot) is imported from its module (and kept in `cache`, the package's globals); any other name is
    tried as a submodule (`package.name`), else AttributeError."""

    def __getattr__(name: str) -> Any:
        if name in where:
            value = getattr(importlib.import_module(where[name], package), name)
            if cache is not None:
                cache[name] = value
            return value
        try:
            return importlib.import_module(f".{name}", package)
        except ModuleNotFoundError as exc:
            if exc.name != f"{package}.{name}":
                raise
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None

    return __getattr__
