"""SwinFace: mmpose Swin-T in the SwinFace geometry plus its 512-d recognition head (`face`)."""
from __future__ import annotations

import torch
from torch import nn

from . import compat
from .base import Extractor, ExtractorSpec, StreamSpec
from .checkpoints import load_strict, read_checkpoint
from .registry import register_extractor

IMAGE_SIZE = 112
STAGE_DIM = 768  # Swin-T last stage
EMBED_DIM = 512


def recognition_head() -> nn.Sequential:
    """SwinFace's `feature` head: Linear-BN-Linear-BN on the pooled last-stage tokens."""
    return nn.Sequential(
        nn.Linear(STAGE_DIM, EMBED_DIM, bias=False),
        nn.BatchNorm1d(EMBED_DIM, eps=2e-5),
        nn.Linear(EMBED_DIM, EMBED_DIM, bias=False),
        nn.BatchNorm1d(EMBED_DIM, eps=2e-5),
    )


class SwinFaceExtractor(Extractor):
    """(B, F, 112, 112, 3) uint8 face crops -> embedding (B, F, 512) [+ map (B, F*49, 768)]."""

    def __init__(self, frames: int = 8, with_map: bool = False) -> None:
        super().__init__()
        compat.apply()
        from mmpose.models.backbones import SwinTransformer

        # Swin-T at 112x112 with patch 2 (stride 2) and window 7: 56 -> 28 -> 14 -> 7 tokens per side.
        self.backbone = SwinTransformer(
            pretrain_img_size=IMAGE_SIZE, embed_dims=96, patch_size=2, window_size=7,
            depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), strides=(2, 2, 2, 2),
            out_indices=(3,),  # output_norm on stage 3 = the reference's final LayerNorm
        )
        self.feature = recognition_head()
        self.with_map = with_map
        streams = {"embedding": StreamSpec(frames, EMBED_DIM, (frames,), "512-d face embedding per frame")}
        if with_map:
            streams["map"] = StreamSpec(frames * 49, STAGE_DIM, (frames, 7, 7), "7x7 token map per frame")
        self.spec = ExtractorSpec(
            name="swinface",
            input_layout="B F 112 112 3 uint8 RGB face crops",
            streams=streams,
            config={"size": IMAGE_SIZE, "frames": frames, "normalise": "(x/255 - 0.5) / 0.5",
                    "with_map": with_map},
        )

    def forward(self, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        B, F = inputs.shape[:2]
        x = inputs.flatten(0, 1).permute(0, 3, 1, 2).float()  # (B*F, 3, 112, 112)
        x = (x / 255.0 - 0.5) / 0.5
        stage = self.backbone(x)[-1]                          # (B*F, 768, 7, 7), layer-normed
        pooled = stage.mean(dim=(2, 3))                       # (B*F, 768)
        embedding = self.feature(pooled).view(B, F, EMBED_DIM)  # (B, F, 512)
        out = {"embedding": embedding}
        if self.with_map:
            out["map"] = stage.flatten(2).transpose(1, 2).reshape(B, F * 49, STAGE_DIM)
        return out

    def load_checkpoint(self, path: str, trust: bool = False) -> None:
        """A state_dict of this module (`backbone.*` in mmpose naming + `feature.*`)."""
        ckpt = read_checkpoint(path, trust)
        load_strict(self, dict(ckpt.get("state_dict", ckpt)), path)


@register_extractor("swinface", "SwinFace: Swin-T (mmpose, 112px, patch 2, window 7) + 512-d head")
def build_swinface(frames: int = 8, with_map: bool = False) -> SwinFaceExtractor:
    return SwinFaceExtractor(frames=frames, with_map=with_map)
