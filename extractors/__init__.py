"""Frozen backbones, one file each, registered by name (`create_extractor`, `list_extractors`).

Lazy: importing the package (or a light part of it, e.g. `skeleton_layouts` for `migue extract
--help`) imports no torch. The built-in models register themselves the first time the registry is
asked for one (`registry._load_builtins`)."""
from __future__ import annotations

from migue.common.lazy import lazy_getattr

__all__ = ["create_extractor", "extractor_spec", "list_extractors", "register_extractor"]


__getattr__ = lazy_getattr(__name__, dict.fromkeys(__all__, ".registry"))  # the registry, or a submodule
