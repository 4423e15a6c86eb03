"""Dataset layouts -> manifests. Autodetected, or named with `--layout`."""
from __future__ import annotations

from pathlib import Path

from ..manifest import Manifest
from . import miga2025

LAYOUTS = {"miga2025": miga2025}
DEFAULT_WINDOW = 64  # frames per emotion window


def read_dataset(root: str | Path, layout: str = "auto", window: int = DEFAULT_WINDOW) -> Manifest:
    """Read a dataset folder into a manifest of units."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist")
    if layout == "auto":
        matches = [name for name, module in LAYOUTS.items() if module.looks_like(root)]
        if not matches:
            raise ValueError(f"{root}: no known dataset layout found (known: {sorted(LAYOUTS)})")
        layout = matches[0]
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; known: {sorted(LAYOUTS)}")
    return LAYOUTS[layout].read(root, window)
