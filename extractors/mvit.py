"""MViTv2 (mmaction2 `MViT`) on RGB clips: the `rgb` and `context` modalities."""
from __future__ import annotations

import torch

from . import compat
from .base import Extractor, ExtractorSpec, StreamSpec
from .checkpoints import CheckpointError, LoadReport, load_strict, mmaction_backbone_state, read_checkpoint
from .registry import register_extractor

# mmaction2's Kinetics-400 MViTv2 configs normalise 0-255 RGB with these.
MEAN = (114.75, 114.75, 114.75)
STD = (57.375, 57.375, 57.375)
EMBED_DIM = 768  # last-stage width of MViTv2 tiny/small/base


def token_grid(frames: int, size: int) -> tuple[int, int, int]:
    """The last stage's (T', H', W'): patch embedding (kernel 3x7x7, stride 2x4x4, padding 1x3x3)
    then three query poolings (kernel 3, stride 1x2x2, padding 1), as mmaction2's MViTv2."""
    steps, side = -(-frames // 2), -(-size // 4)
    for _ in range(3):
        side = -(-side // 2)
    return steps, side, side


def mvit_spec(arch: str = "small", frames: int = 16, size: int = 224) -> ExtractorSpec:
    """The spec of `build_mvit(arch, frames, size)`."""
    grid = token_grid(frames, size)
    return ExtractorSpec(
        name="mvit",
        input_layout="B T H W 3 uint8 RGB",
        streams={
            "tokens": StreamSpec(grid[0] * grid[1] * grid[2], EMBED_DIM, grid,
                                 "last-stage patch tokens, (t, h, w) row-major"),
            "cls": StreamSpec(1, EMBED_DIM, (1,), "class token"),
        },
        config={"arch": arch, "frames": frames, "size": size, "mean": MEAN, "std": STD},
    )


class MViTExtractor(Extractor):
    """(B, T, H, W, 3) uint8 RGB -> tokens (B, T'*H'*W', 768) and cls (B, 1, 768)."""

    def __init__(self, arch: str = "small", frames: int = 16, size: int = 224) -> None:
        super().__init__()
        compat.apply()
        from mmaction.models import MViT

        self.backbone = MViT(arch=arch, spatial_size=size, temporal_size=frames,
                             out_scales=-1, with_cls_token=True, output_cls_token=True)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1, 1), persistent=False)
        self.spec = mvit_spec(arch, frames, size)
        measured = self._grid(frames, size)
        if measured != self.spec.streams["tokens"].grid:  # the spec is known without the model: keep it true
            raise RuntimeError(f"MViT token grid {measured} differs from the spec's {self.spec.streams['tokens'].grid}")

    @torch.no_grad()
    def _grid(self, frames: int, size: int) -> tuple[int, int, int]:
        # Measure the token grid once on a zero clip rather than re-deriving MViT's strides.
        patch_map, _ = self.backbone(torch.zeros(1, 3, frames, size, size))[-1]
        return tuple(int(s) for s in patch_map.shape[2:])  # type: ignore[return-value]

    def forward(self, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        x = inputs.permute(0, 4, 1, 2, 3).float()        # (B, 3, T, H, W)
        x = (x - self.mean) / self.std
        patch_map, cls = self.backbone(x)[-1]            # (B, 768, T', H', W'), (B, 768)
        tokens = patch_map.flatten(2).transpose(1, 2)    # (B, T'H'W', 768)
        return {"tokens": tokens, "cls": cls.unsqueeze(1)}

    def load_checkpoint(self, path: str, trust: bool = False, strict: bool = True) -> LoadReport:
        """MViTv2 weights in either released format, detected from the keys: an mmaction2
        recognizer checkpoint (`backbone.*` + `cls_head.*`) or torchvision's `mvit_v2_s`
        state_dict (converted, see extractors/convert_torchvision_mvit.py). Heads are dropped."""
        from . import convert_torchvision_mvit
        from .weights import detect_format, unsupported

        ckpt = read_checkpoint(path, trust)
        fmt = detect_format(ckpt)
        hint = ("rel_pos_* and patch shapes follow --frames/--size and --arch: the released "
                "Kinetics-400 MViTv2-S weights need --arch small --frames 16 --size 224")
        if fmt == "mmaction2-recognizer":
            state = mmaction_backbone_state(ckpt, path)
            return load_strict(self.backbone, state, path, strict=strict, hint=hint,
                               report=LoadReport(str(path), fmt))
        if fmt == "torchvision-mvit":
            final_norm = f"norm{self.backbone.num_scales - 1}"
            state, dropped, unknown = convert_torchvision_mvit.convert(ckpt.get("state_dict", ckpt), final_norm)
            return load_strict(self.backbone, state, path, strict=strict, hint=hint, unmapped=unknown,
                               report=LoadReport(str(path), fmt, dropped=dropped),
                               source_name=convert_torchvision_mvit.source_key)
        raise CheckpointError(unsupported(str(path), "mvit", fmt, ckpt))


@register_extractor("mvit", "MViTv2 (mmaction2) on RGB clips: patch tokens + class token, 768-d", spec=mvit_spec,
                    formats=("mmaction2-recognizer", "torchvision-mvit"))
def build_mvit(arch: str = "small", frames: int = 16, size: int = 224) -> MViTExtractor:
    return MViTExtractor(arch=arch, frames=frames, size=size)
