"""One registry and one factory for every backbone (as timm's `create_model`).

A leaf: the model files import it to register themselves. The built-in models are imported the
first time a name is looked up (`_load_builtins`), not when the package is imported, so that
`migue extract --help` needs no torch; every lookup sees them all."""
from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

from .base import Extractor, ExtractorSpec

_BUILDERS: dict[str, Callable[..., Extractor]] = {}
_SPECS: dict[str, Callable[..., ExtractorSpec]] = {}
_DESCRIPTIONS: dict[str, str] = {}
_FORMATS: dict[str, tuple[str, ...]] = {}  # name -> the checkpoint formats it reads
BUILTINS = ("agcn", "mvit", "swinface")  # model files that register themselves on import


def _load_builtins() -> None:
    """Import the built-in model files once (each registers its extractors)."""
    for module in BUILTINS:
        importlib.import_module(f"{__package__}.{module}")


def register_extractor(name: str, description: str, spec: Callable[..., ExtractorSpec],
                       formats: Sequence[str] = ()) -> Callable[[Callable[..., Extractor]], Callable[..., Extractor]]:
    """Decorator: register a builder `fn(**config) -> Extractor` under `name`, with `spec(**config)`,
    the spec the built model will have, known without building it, and the checkpoint `formats`
    its `load_checkpoint` reads (`weights.FORMATS` names, or the extractor's own)."""

    def wrap(fn: Callable[..., Extractor]) -> Callable[..., Extractor]:
        if name in _BUILDERS:
            raise ValueError(f"extractor {name!r} registered twice")
        _BUILDERS[name] = fn
        _SPECS[name] = spec
        _DESCRIPTIONS[name] = description
        _FORMATS[name] = tuple(formats)
        return fn

    return wrap


def extractor_formats(name: str) -> tuple[str, ...]:
    """The checkpoint formats extractor `name` reads (empty: random weights only)."""
    _load_builtins()
    if name not in _BUILDERS:
        raise KeyError(f"unknown extractor {name!r}; known: {sorted(_BUILDERS)}")
    return _FORMATS[name]


def extractor_spec(name: str, **config: Any) -> ExtractorSpec:
    """The spec (streams, shapes, config) `create_extractor(name, **config)` would have, without
    building the model (cheap: no weights, no mmaction import)."""
    _load_builtins()
    if name not in _SPECS:
        raise KeyError(f"unknown extractor {name!r}; known: {sorted(_SPECS)}")
    return _SPECS[name](**config)


def list_extractors() -> dict[str, str]:
    """Registered names -> one-line descriptions."""
    _load_builtins()
    return dict(_DESCRIPTIONS)


def create_extractor(name: str, checkpoint: str | list[str] | None = None, trust_checkpoint: bool = False,
                     strict_checkpoint: bool = True, **config: Any) -> Extractor:
    """Build a frozen extractor by name; load `checkpoint` strictly when given.

    `strict_checkpoint=False` (the user's explicit opt-out) loads what fits and warns, naming
    the keys left random, instead of refusing. What the load did is `model.checkpoint_report`.
    """
    _load_builtins()
    if name not in _BUILDERS:
        raise KeyError(f"unknown extractor {name!r}; known: {sorted(_BUILDERS)}")
    model = _BUILDERS[name](**config)
    if checkpoint:
        model.checkpoint_report = model.load_checkpoint(checkpoint, trust=trust_checkpoint,
                                                        strict=strict_checkpoint)
    return model.freeze()
