"""Device choice, one rule for both stages."""
from __future__ import annotations

from typing import Any


def pick_device(name: str) -> Any:
    """'auto' -> cuda when torch sees one, else cpu; 'cuda' without one is an error; else as given."""
    import torch  # only the callers that run models pay for torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but torch sees no CUDA device")
    return torch.device(name)
