"""Dataset layouts -> manifests. Autodetected, or named with `--layout`.

Layouts (see each module): `imigue` (the full release: labels.csv with subjects, videos,
skeletons if present), `miga2025` (xlsx sheets), `miga2023` (light-hand CSVs),
`openpose-json` (raw OpenPose per-frame JSON in the MiGA folders), `stgcn` (the ST-GCN
baseline's .npy/.pkl packs). Autodetection tries them in that order.
"""
from __future__ import annotations

from pathlib import Path

from .common import DEFAULT_WINDOW, DatasetManifest, ReadOptions
from . import imigue, miga2023, miga2025, openpose_json, stgcn

LAYOUTS = {"imigue": imigue, "miga2025": miga2025, "miga2023": miga2023,
           "openpose-json": openpose_json, "stgcn": stgcn}

__all__ = ["DEFAULT_WINDOW", "LAYOUTS", "DatasetManifest", "ReadOptions", "detect_layout",
           "read_dataset"]


def detect_layout(root: str | Path) -> list[str]:
    """Every layout the folder looks like, in the order autodetection prefers them."""
    return [name for name, module in LAYOUTS.items() if module.looks_like(Path(root))]


def read_dataset(root: str | Path, layout: str = "auto", window: int = DEFAULT_WINDOW, *,
                 read_skeletons: bool = False, parsed_dir: str | Path | None = None) -> DatasetManifest:
    """Read a dataset folder into a manifest of units; bad input becomes `manifest.problems`.

    `read_skeletons` parses every skeleton file (what `migue data check` does); otherwise only
    those of videos without a decodable video file, which give those videos their frame count
    and size. Parsed skeletons are kept by content hash under `parsed_dir` when given."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist")
    if layout == "auto":
        matches = detect_layout(root)
        if not matches:
            raise ValueError(f"{root}: no known dataset layout found (known: {', '.join(LAYOUTS)})")
        layout = matches[0]
    else:
        matches = []
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    opts = ReadOptions(window=window, read_skeletons=read_skeletons,
                       parsed_dir=Path(parsed_dir) if parsed_dir else None)
    manifest = LAYOUTS[layout].read(root, opts)
    if len(matches) > 1:
        manifest.notes.append(f"{root} also looks like {', '.join(matches[1:])}: read as {layout} "
                              "(choose with --layout)")
    return manifest
