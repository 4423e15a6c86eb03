"""A plugin backbone: `rgb-small`, a tiny random 3D-conv video model over MG clips.

    migue extract --plugin examples/plugins/backbone.py --modality rgb,rgb-small --data D
    migue fuse-train --plugin examples/plugins/backbone.py --task mg --fusion probe-linear-rgb-small ...

Everything migue needs about a backbone is one row (`Modality`) and one extractor, registered
together by `register_modality`: the row borrows the rgb row's unit input (a centre-cropped
clip) and decoding (`takes`: the one-pass engine cuts it from the frames it decodes for rgb),
and declares its own extractor, defaults, fingerprint inputs and the fusion stream its entries
hold (`rgb-small`, whose probes `probe-linear-rgb-small` / `probe-mlp-rgb-small` then exist).
Its weights are random (seeded by `migue extract`); a plain state_dict of this module loads.
"""
from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from migue.cache.streams import Stream
from migue.extractors.base import Extractor, ExtractorSpec, StreamSpec
from migue.extractors.checkpoints import CheckpointError
from migue.pipeline.extraction.modalities import get_modality, register_modality

WIDTH = 32  # token width
MEAN, STD = 114.75, 57.375  # the pixel normalisation, as MViT's


def grid(frames: int, size: int) -> tuple[int, int, int]:
    """Token grid (T', H', W'): stride (1, 2, 2) then (2, 2, 2), padding 1, kernel 3."""
    return -(-frames // 2), -(-size // 4), -(-size // 4)


def tiny_c3d_spec(frames: int = 8, size: int = 64) -> ExtractorSpec:
    t, h, w = grid(frames, size)
    return ExtractorSpec(name="tiny-c3d", input_layout="B T H W 3 uint8 RGB",
                         streams={"tokens": StreamSpec(t * h * w, WIDTH, (t, h, w), "conv tokens, (t, h, w) row-major")},
                         config={"frames": frames, "size": size, "width": WIDTH, "mean": MEAN, "std": STD})


class TinyC3D(Extractor):
    """(B, T, H, W, 3) uint8 RGB -> tokens (B, T'*H'*W', 32): two 3D convolutions."""

    def __init__(self, frames: int = 8, size: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv3d(3, 16, 3, stride=(1, 2, 2), padding=1), nn.GELU(),
            nn.Conv3d(16, WIDTH, 3, stride=2, padding=1),
        )
        self.spec = tiny_c3d_spec(frames, size)

    def forward(self, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (inputs.permute(0, 4, 1, 2, 3).float() - MEAN) / STD   # (B, 3, T, H, W)
        x = self.net(x)                                             # (B, 32, T', H', W')
        return {"tokens": x.flatten(2).transpose(1, 2)}             # (B, T'H'W', 32)

    def load_checkpoint(self, path: str, trust: bool = False, strict: bool = True) -> object:
        """A plain state_dict of this module (format `torch-state-dict`), loaded strictly."""
        state = torch.load(path, map_location="cpu", weights_only=not trust)
        try:
            return self.load_state_dict(state, strict=strict)
        except (RuntimeError, TypeError) as exc:
            raise CheckpointError(f"{path}: not a tiny-c3d state_dict ({exc})") from None


def build_tiny_c3d(frames: int = 8, size: int = 64) -> TinyC3D:
    return TinyC3D(frames, size)


RGB_SMALL = register_modality(
    replace(get_modality("rgb"), name="rgb-small", extractor="tiny-c3d", frames=8, size=64,
            shaping=("frames", "size"), archs=(), fixed_arch="w32", cpu_batch=4,
            streams=(Stream("rgb-small", "tokens", WIDTH),)),
    build_tiny_c3d, spec=tiny_c3d_spec, formats=("torch-state-dict",),
    description="tiny random 3D conv on RGB clips (plugin example): 32-d tokens")
