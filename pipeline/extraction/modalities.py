"""The modality table: one row per modality, everything stage one needs to know about it.

A row names its extractor, the unit kind it covers, its default frames and size, how a unit
becomes its input, and which options shape its numbers (they are the extractor's build
arguments, so the extractor's spec, and the cache key, follow from the row and the options
without building the model). Adding a backbone: one file in `extractors/` and one row here;
the CLI's choices, the cache key and Dask read this table.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from migue.cache import MG_KIND, WINDOW_KIND
from migue.extractors.skeleton_layouts import get_layout
from migue.pipeline.datasets.manifest import Unit, Video

from .inputs import InputConfig, face_crops, pose_clip, rgb_clip

UnitInput = Callable[[Unit, Video, InputConfig, "Path | None"], np.ndarray]
MakeConfig = Callable[[int, int, Any], InputConfig]  # (frames, size, options) -> InputConfig


@dataclass(frozen=True)
class Modality:
    """One modality: its extractor, its units, its defaults and how a unit becomes its input."""

    name: str
    extractor: str  # registered extractor name
    unit_kind: str  # which units it covers: MG clips or emotion windows
    frames: int  # default frames per unit
    size: int  # default frame side (0: not an image input)
    unit_input: UnitInput  # (unit, video, input config, parsed-skeleton dir) -> the unit's input
    make_config: MakeConfig  # how its units are sampled and decoded
    shaping: tuple[str, ...]  # ExtractOptions fields passed to the extractor: they shape its numbers
    reads_skeleton: bool  # its inputs come from (or are placed by) the skeletons
    cpu_batch: int  # units per CPU batch: 1 for MViTv2 (slower per clip in larger batches, perf-facts.md)
    fixed_arch: str = ""  # the entry's arch label when no option names it
    one_pass: bool = False  # decoded by the one-pass video engine (onepass.py): each video read once

    def resolved(self, opts: Any) -> dict[str, Any]:
        """frames and size of `opts`, with this modality's defaults where None."""
        return {"frames": opts.frames or self.frames, "size": opts.size or self.size}

    def extractor_args(self, opts: Any) -> dict[str, Any]:
        """The extractor's build arguments: the shaping options, defaults resolved."""
        values = {**vars(opts), **self.resolved(opts)}
        return {name: values[name] for name in self.shaping}

    def input_config(self, opts: Any) -> InputConfig:
        """How this modality's units are sampled and decoded under `opts`."""
        resolved = self.resolved(opts)
        return self.make_config(resolved["frames"], resolved["size"], opts)

    def arch(self, opts: Any) -> str:
        """The arch label of the entry name and key: the option that names it, else `fixed_arch`."""
        args = self.extractor_args(opts)
        return str(args["arch"] if "arch" in args else args.get("layout", self.fixed_arch))


def _rgb(unit: Unit, video: Video, cfg: InputConfig, parsed_dir: Path | None) -> np.ndarray:
    return rgb_clip(unit, video, cfg)


def _cropped(frames: int, size: int, opts: Any) -> InputConfig:
    return InputConfig(frames=frames, size=size, resize="crop")  # short side to `size`, centre crop


def _squashed(frames: int, size: int, opts: Any) -> InputConfig:
    return InputConfig(frames=frames, size=size, resize="squash")  # the whole frame, squashed


def _skeleton(frames: int, size: int, opts: Any) -> InputConfig:
    return InputConfig(frames=frames, joints=get_layout(opts.layout).joints)


def _faces(frames: int, size: int, opts: Any) -> InputConfig:
    return InputConfig(frames=frames, face_size=size)


MVIT_OPTIONS = ("arch", "frames", "size")
MODALITIES: dict[str, Modality] = {m.name: m for m in (
    Modality("rgb", "mvit", MG_KIND, 16, 224, _rgb, _cropped, MVIT_OPTIONS, False, 1, one_pass=True),
    Modality("context", "mvit", WINDOW_KIND, 16, 224, _rgb, _squashed, MVIT_OPTIONS, False, 1, one_pass=True),
    Modality("pose", "agcn", MG_KIND, 64, 0, pose_clip, _skeleton, ("layout", "frames"), True, 4),
    Modality("face", "swinface", WINDOW_KIND, 8, 112, face_crops, _faces, ("frames",), True, 4, fixed_arch="swin-t",
             one_pass=True),
)}


def get_modality(name: str) -> Modality:
    """A row by name, with a clear error listing the known ones."""
    if name not in MODALITIES:
        raise ValueError(f"unknown modality {name!r}; known: {sorted(MODALITIES)}")
    return MODALITIES[name]
