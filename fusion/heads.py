"""Building a registered head from a config, and checking it keeps the head contract."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .config import resolve_config
from .data import Input
from .registry import Shapes, get_head, num_outputs
from .tasks import get_task


class HeadContractError(ValueError):
    """A head that breaks the contract (its output shape, what it reads); names the head."""


def head_inputs(name: str, task: str, config: dict[str, Any] | None = None) -> dict[str, Input]:
    """The inputs head `name` reads for `task` under `config` (defaults for keys not given)."""
    return get_head(name, task).inputs(task, resolve_config(task, {**(config or {}), "head": name}))


def build_head(name: str, task: str, shapes: Shapes, config: dict[str, Any] | None = None) -> nn.Module:
    """Build head `name` for `task` from the pooled input shapes {input: (L, D)}; config keys
    not given take their defaults (the training DEFAULTS and the head's declared settings)."""
    return get_head(name, task).build(task, shapes, resolve_config(task, {**(config or {}), "head": name}))


def check_head(name: str, task: str, head: nn.Module, batch: dict[str, torch.Tensor], cfg: dict[str, Any]) -> None:
    """One forward on a real batch, before any training: logits of (B, num_classes), or (B,) for a
    binary task (emotion), finite; else HeadContractError naming the head and what it returned."""
    n, binary = len(batch["label"]), get_task(task).binary
    expected = (n,) if binary else (n, num_outputs(task, cfg))
    spec, was_training = get_head(name, task), head.training
    try:
        with torch.no_grad():
            head.eval()
            outputs = {"logits": head(batch)}
            if spec.trains_members:  # every loss term's logits keep the contract too
                outputs.update({f"loss term {k}": t for k, t in enumerate(spec.loss_terms(head, batch))})
    except Exception as exc:
        raise HeadContractError(f"head {name!r} fails on a {task} batch of {n} "
                                f"(inputs {', '.join(k for k in batch if k != 'label')}): "
                                f"{type(exc).__name__}: {exc}") from exc
    finally:
        head.train(was_training)
    for what, out in outputs.items():
        if not isinstance(out, torch.Tensor):
            raise HeadContractError(f"head {name!r} returned {type(out).__name__} as its {what}, "
                                    f"expected a tensor {expected}")
        if tuple(out.shape) != expected:
            raise HeadContractError(f"head {name!r} returned {what} of shape {tuple(out.shape)} for a {task} batch "
                                    f"of {n}; expected {expected}" + (" (one logit per item)" if binary else ""))
        if not torch.isfinite(out).all():
            raise HeadContractError(f"head {name!r} returned non-finite {what} (NaN or inf) on a {task} batch of {n}")
