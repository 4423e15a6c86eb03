"""Frozen backbones, one file each, registered by name (`create_extractor`, `list_extractors`).

Lazy: importing the package (or a light part of it, e.g. `skeleton_layouts` for `migue extract
--help`) imports no torch. The built-in models register themselves the first time the registry is
asked for one (`registry._load_builtins`)."""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["create_extractor", "extractor_spec", "list_extractors", "register_extractor"]


def __getattr__(name: str) -> Any:
    """The registry's functions, and submodules (`migue.extractors.agcn`), imported on first use."""
    if name in __all__:
        return getattr(importlib.import_module(".registry", __name__), name)
    try:
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
