"""One registry and one factory for every backbone (as timm's `create_model`).

A leaf: the model files import it to register themselves, and `extractors/__init__.py`
imports the model files, so importing any part of `migue.extractors` registers them all."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import Extractor, ExtractorSpec

_BUILDERS: dict[str, Callable[..., Extractor]] = {}
_SPECS: dict[str, Callable[..., ExtractorSpec]] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register_extractor(name: str, description: str, spec: Callable[..., ExtractorSpec]
                       ) -> Callable[[Callable[..., Extractor]], Callable[..., Extractor]]:
    """Decorator: register a builder `fn(**config) -> Extractor` under `name`, with `spec(**config)`,
    the spec the built model will have, known without building it."""

    def wrap(fn: Callable[..., Extractor]) -> Callable[..., Extractor]:
        if name in _BUILDERS:
            raise ValueError(f"extractor {name!r} registered twice")
        _BUILDERS[name] = fn
        _SPECS[name] = spec
        _DESCRIPTIONS[name] = description
        return fn

    return wrap


def extractor_spec(name: str, **config: Any) -> ExtractorSpec:
    """The spec (streams, shapes, config) `create_extractor(name, **config)` would have, without
    building the model (cheap: no weights, no mmaction import)."""
    if name not in _SPECS:
        raise KeyError(f"unknown extractor {name!r}; known: {sorted(_SPECS)}")
    return _SPECS[name](**config)


def list_extractors() -> dict[str, str]:
    """Registered names -> one-line descriptions."""
    return dict(_DESCRIPTIONS)


def create_extractor(name: str, checkpoint: str | list[str] | None = None, trust_checkpoint: bool = False,
                     strict_checkpoint: bool = True, **config: Any) -> Extractor:
    """Build a frozen extractor by name; load `checkpoint` strictly when given.

    `strict_checkpoint=False` (the user's explicit opt-out) loads what fits and warns, naming
    the keys left random, instead of refusing. What the load did is `model.checkpoint_report`.
    """
    if name not in _BUILDERS:
        raise KeyError(f"unknown extractor {name!r}; known: {sorted(_BUILDERS)}")
    model = _BUILDERS[name](**config)
    if checkpoint:
        model.checkpoint_report = model.load_checkpoint(checkpoint, trust=trust_checkpoint,
                                                        strict=strict_checkpoint)
    return model.freeze()
