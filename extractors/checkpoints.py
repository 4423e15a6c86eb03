"""Loading released checkpoints strictly: every key named, nothing left silently random."""
from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn


class CheckpointError(RuntimeError):
    """A checkpoint that does not fit the model; the message names the file and keys."""


def read_checkpoint(path: str | Path, trust: bool = False) -> Mapping[str, Any]:
    """torch.load with weights_only=True unless the user trusts the file (full pickle runs code)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path} holds objects beyond tensors ({str(exc).splitlines()[0]}). If you trust this "
            "file, pass --trust-checkpoint to allow full pickle loading (it can run arbitrary code)."
        ) from None
    except (RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable torch checkpoint: {exc}") from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state_dict")
    return obj


def mmaction_backbone_state(ckpt: Mapping[str, Any], path: str | Path) -> dict[str, torch.Tensor]:
    """The `backbone.*` weights of an mmaction2 recognizer checkpoint; `cls_head.*` is dropped."""
    state = ckpt.get("state_dict", ckpt)
    backbone = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    other = [k for k in state if not k.startswith(("backbone.", "cls_head."))]
    if not backbone:
        raise CheckpointError(f"{path} has no 'backbone.*' keys (first keys: {list(state)[:5]})")
    if other:
        raise CheckpointError(f"{path} has keys outside backbone.*/cls_head.*: {_few(other)}")
    return backbone


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], path: str | Path,
                ignore: Iterable[str] = ()) -> None:
    """Load `state` into `module`; any missing, unexpected or mis-shaped key is an error."""
    ignore = tuple(ignore)
    own = module.state_dict()
    missing = [k for k in own if k not in state and not k.startswith(ignore)]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
              for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    problems = []
    if missing:
        problems.append(f"missing keys {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_few(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches {_few(shapes)}")
    if problems:
        raise CheckpointError(f"{path} does not fit {type(module).__name__}: " + "; ".join(problems))
    module.load_state_dict(dict(state), strict=not ignore)


def _few(items: list[str], n: int = 6) -> str:
    shown = ", ".join(items[:n])
    return f"[{shown}{f', ... ({len(items)} in all)' if len(items) > n else ''}]"
