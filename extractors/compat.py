"""Compatibility fixes for the OpenMMLab stack, applied once before any model import.

Each fix names the upstream fault it works around. Nothing in site-packages is
patched; placeholders are registered in ``sys.modules`` and removed again where
leaving them would hide an honest import error later.
"""
from __future__ import annotations

import sys
import types
import warnings

import numpy as np

_APPLIED = False


def _alias_numpy2_removals() -> None:
    # mmaction2 1.2.0 uses np.Inf, np.trapz and np.in1d, removed in numpy 2.
    for old, new in (("Inf", "inf"), ("trapz", "trapezoid"), ("in1d", "isin")):
        if not hasattr(np, old) and hasattr(np, new):
            setattr(np, old, getattr(np, new))


class _Missing:
    """Stands in for any name imported from a placeholder module; unusable on purpose."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise ImportError("this name comes from a module migue replaced with a placeholder")


def _placeholder(name: str, **attrs: object) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    module.__path__ = []  # a package, so `from name import sub` can resolve
    module.__getattr__ = _missing_attribute  # type: ignore[method-assign]
    return module


def _missing_attribute(attr: str) -> type:
    if attr.startswith("__"):
        raise AttributeError(attr)
    return _Missing


def _import_mmaction_models() -> None:
    # The mmaction2 1.2.0 wheel and sdist lack mmaction/models/localizers/drn
    # (upstream issue open-mmlab/mmaction2#2714); mmaction.models imports it.
    # mmaction.models.multimodal (VindLU) imports names that transformers 5 removed
    # (`apply_chunking_to_forward`), so `import mmaction.models` fails wherever a current
    # transformers is installed (seen on the CUDA machines). migue uses no multimodal model.
    for name in ("mmaction.models.localizers.drn", "mmaction.models.localizers.drn.drn",
                 "mmaction.models.multimodal"):
        if name not in sys.modules:
            sys.modules[name] = _placeholder(name)
    import mmaction.models  # noqa: F401


def _import_mmpose_models() -> None:
    # mmpose.models imports mmcv.ops (compiled, absent from mmcv-lite) and
    # mmdet.utils at module level, and mmpose.visualization imports
    # torchvision.transforms (torchvision does not import beside the CPU torch
    # wheel). Import mmpose's models once behind placeholders, then remove the
    # placeholders so later imports of those packages fail honestly.
    stand_ins = {
        "mmcv.ops": _placeholder("mmcv.ops"),
        "mmdet": _placeholder("mmdet"),
        "mmdet.utils": _placeholder("mmdet.utils"),
        "torchvision": _placeholder("torchvision"),
        "torchvision.transforms": _placeholder("torchvision.transforms"),
    }
    added = [name for name in stand_ins if name not in sys.modules]
    for name in added:
        sys.modules[name] = stand_ins[name]
    try:
        import mmpose.models.backbones  # noqa: F401
    finally:
        for name in added:
            sys.modules.pop(name, None)


def apply() -> None:
    """Apply every fix once; safe to call many times."""
    global _APPLIED
    if _APPLIED:
        return
    _alias_numpy2_removals()
    with warnings.catch_warnings():
        # mmcv-lite has no compiled ops; mmcv warns about it at import. Expected here.
        warnings.filterwarnings("ignore", message=".*MultiScaleDeformableAttention.*")
        _import_mmaction_models()
        _import_mmpose_models()
    _APPLIED = True
