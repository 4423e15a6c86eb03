"""Frozen backbones, one file each, registered by name (`create_extractor`, `list_extractors`).

Importing the package registers the built-in models; the registry itself imports none of them."""
from . import agcn, mvit, swinface  # noqa: F401  (registration side effect)
from .registry import create_extractor, extractor_spec, list_extractors, register_extractor

__all__ = ["create_extractor", "extractor_spec", "list_extractors", "register_extractor"]
