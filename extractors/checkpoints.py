"""Loading released checkpoints strictly: every key named, nothing left silently random."""
from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

log = logging.getLogger("migue.checkpoints")


class CheckpointError(RuntimeError):
    """A checkpoint that does not fit the model; the message names the file and keys."""


@dataclass
class LoadReport:
    """What a checkpoint load did: its format, and (non-strict only) what did not fit."""

    path: str
    format: str
    dropped: list[str] = field(default_factory=list)  # source keys the format leaves out on purpose
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)


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
                strict: bool = True, hint: str = "",
                report: LoadReport | None = None, unmapped: Iterable[str] = (),
                source_name: Callable[[str], str] | None = None) -> LoadReport:
    """Load `state` into `module`; any missing, unexpected or mis-shaped key is an error.

    `unmapped` names source keys a format conversion found no counterpart for: unexpected too.
    `source_name` gives, for a converted format, the checkpoint's own name of a model key.
    `strict=False` (the user's explicit `--non-strict-checkpoint`) loads what fits and logs a
    warning naming every key left out: those weights stay at their random initialisation.
    """
    report = report or LoadReport(str(path), "state_dict")
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = list(unmapped) + [k for k in state if k not in own]
    mismatched = [k for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]

    def named(k: str) -> str:
        theirs = source_name(k) if source_name else k
        return k if theirs == k else f"{theirs} (migue: {k})"

    shapes = [f"{named(k)}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in mismatched]
    problems = []
    if missing:
        problems.append(f"missing keys {_few([named(k) for k in missing])}")
    if unexpected:
        problems.append(f"unexpected keys {_few(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches {_few(shapes)}")
    message = f"{path} does not fit {type(module).__name__}: " + "; ".join(problems)
    if problems and strict:
        raise CheckpointError(message + (f". {hint}" if hint else "")
                              + " (--non-strict-checkpoint loads what fits and leaves the rest random)")
    if problems:
        log.warning("NON-STRICT load, these weights stay RANDOM: %s", message)
    report.missing += missing
    report.unexpected += unexpected
    report.mismatched += mismatched
    fits = {k: v for k, v in state.items() if k in own and k not in mismatched}
    module.load_state_dict(fits, strict=not problems)
    return report


def _few(items: list[str], n: int = 6) -> str:
    shown = ", ".join(items[:n])
    return f"[{shown}{f', ... ({len(items)} in all)' if len(items) > n else ''}]"


def rename(name: str, rules: list[tuple[str, str]]) -> str | None:
    """`name` rewritten by the first (regex, template) rule that matches it whole, or None."""
    for pattern, template in rules:
        if re.fullmatch(pattern, name):
            return re.sub(pattern, template, name)
    return None
