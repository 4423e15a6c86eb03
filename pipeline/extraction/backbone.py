"""A modality's backbone: its entry config (known from the options, no model built), building
it, and one forward pass of a batch."""
from __future__ import annotations

import contextlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from migue.cache.labels import MG_CLASS_NAMES
from migue.cache.units import DENSE_KIND
from migue.common.files import file_sha256
from migue.extractors import create_extractor, extractor_spec
from migue.pipeline.datasets.manifest import Manifest

from .modalities import get_modality
from .options import ExtractOptions


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, not {precision!r}")
    return precision


def weights_identity(opts: ExtractOptions) -> dict[str, Any]:
    """The weights' part of the cache key: the checkpoint files and their SHA-256, and the seed
    of whatever is random (all of it without a checkpoint; what a non-strict load left out)."""
    if not opts.checkpoints:
        return {"random_init_seed": opts.seed}
    weights: dict[str, Any] = {"files": [Path(p).name for p in opts.checkpoints],
                               "sha256": [file_sha256(p) for p in opts.checkpoints]}
    if not opts.strict_checkpoint:  # partly random weights must never share a key with full ones
        weights["non_strict"] = True
        weights["random_init_seed"] = opts.seed
    return weights


def entry_config(opts: ExtractOptions, precision: str, manifest: Manifest) -> dict[str, Any]:
    """Everything that shaped the numbers (what the cache key hashes), from the options alone."""
    mod = get_modality(opts.modality)
    spec = extractor_spec(mod.extractor, **mod.extractor_args(opts)).to_dict()
    cfg = mod.input_config(opts)
    config = {
        "modality": opts.modality,
        "backbone": spec["name"],
        "arch": mod.arch(opts),
        "extractor": spec["config"],
        "streams": spec["streams"],
        "inputs": {**asdict(cfg), "joints": list(cfg.joints)},
        "weights": weights_identity(opts),
        "precision": precision,
        "unit_kind": mod.kind(opts),
        "dataset_layout": manifest.layout,
    }
    if mod.kind(opts) == DENSE_KIND:  # the grid shapes the units; fusion names classes without the dataset
        config["dense"] = {"window": opts.dense_window, "stride": opts.dense_stride}
        config["class_names"] = list(class_names_of(manifest))
    return config


def class_names_of(manifest: Manifest) -> tuple[str, ...]:
    """The dataset's MG class names (SMG's 17, iMiGUE's 32), by class index."""
    return tuple(getattr(manifest, "class_names", None) or MG_CLASS_NAMES)


def build_model(opts: ExtractOptions) -> torch.nn.Module:
    """The frozen extractor of the options' modality, its checkpoint loaded."""
    mod = get_modality(opts.modality)
    torch.manual_seed(opts.seed)  # random weights, when used, are reproducible
    checkpoint = opts.checkpoints[0] if len(opts.checkpoints) == 1 else (list(opts.checkpoints) or None)
    return create_extractor(mod.extractor, checkpoint=checkpoint, trust_checkpoint=opts.trust_checkpoint,
                            strict_checkpoint=opts.strict_checkpoint, **mod.extractor_args(opts))


def autocast_for(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on the model's device for 'bf16'; nothing for 'fp32'."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def forward(model: torch.nn.Module, batch: torch.Tensor, device: torch.device,
            precision: str) -> dict[str, np.ndarray]:
    """{stream: (B, L, D) float32} of one batch of decoded inputs (cast to the cache's float16
    after the finiteness check)."""
    with torch.inference_mode(), autocast_for(device, precision):
        out = model(batch.to(device, non_blocking=True))
    return {k: v.float().cpu().numpy() for k, v in out.items()}
