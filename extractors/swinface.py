"""SwinFace: mmpose Swin-T in the SwinFace geometry plus its 512-d recognition head (`face`).

Numbers equal the reference (github lxq1000/SwinFace, swinface_project/backbones/swin.py):
embedding = feature(avgpool(norm(x))) on (x/255 - 0.5)/0.5 RGB 112x112 crops. See
extractors/convert_swinface.py for how the official checkpoint maps onto this module and
scripts/check_equivalence.py for the check against the reference code.
"""
from __future__ import annotations

import logging

import torch
from torch import nn

from . import compat
from .base import Extractor, ExtractorSpec, StreamSpec
from .checkpoints import CheckpointError, LoadReport, load_strict, read_checkpoint
from .registry import register_extractor

log = logging.getLogger("migue.checkpoints")

IMAGE_SIZE = 112
PATCH = 2
WINDOW = 7
STAGE_DIM = 768  # Swin-T last stage
EMBED_DIM = 512
DEPTHS = (2, 2, 6, 2)


def shifted_blocks() -> list[tuple[int, int]]:
    """The (stage, block) pairs whose windows shift, as in the reference: every odd block of a
    stage whose resolution is larger than the window (here all but the last, 7x7, stage)."""
    return [(i, j) for i, depth in enumerate(DEPTHS) for j in range(depth)
            if j % 2 == 1 and IMAGE_SIZE // PATCH // 2**i > WINDOW]


def swinface_spec(frames: int = 8, with_map: bool = False) -> ExtractorSpec:
    """The spec of `build_swinface(frames, with_map)`."""
    streams = {"embedding": StreamSpec(frames, EMBED_DIM, (frames,), "512-d face embedding per frame")}
    if with_map:
        streams["map"] = StreamSpec(frames * 49, STAGE_DIM, (frames, 7, 7), "7x7 token map per frame")
    return ExtractorSpec(
        name="swinface",
        input_layout="B F 112 112 3 uint8 RGB face crops",
        streams=streams,
        config={"size": IMAGE_SIZE, "frames": frames, "normalise": "(x/255 - 0.5) / 0.5",
                "with_map": with_map, "head": "linear768-bn-linear512-bn",
                "shifted_blocks": shifted_blocks()},
    )


def recognition_head() -> nn.Sequential:
    """SwinFace's `feature` head on the pooled last-stage tokens, exactly as the reference:
    Linear(768, 768, no bias) - BN(768) - Linear(768, 512, no bias) - BN(512), eps 2e-5."""
    return nn.Sequential(
        nn.Linear(STAGE_DIM, STAGE_DIM, bias=False),
        nn.BatchNorm1d(STAGE_DIM, eps=2e-5),
        nn.Linear(STAGE_DIM, EMBED_DIM, bias=False),
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
            pretrain_img_size=IMAGE_SIZE, embed_dims=96, patch_size=PATCH, window_size=WINDOW,
            depths=DEPTHS, num_heads=(3, 6, 12, 24), strides=(PATCH, 2, 2, 2),
            out_indices=(3,),  # output_norm on stage 3 = the reference's final LayerNorm
        )
        self.shifted = self._match_reference_shifts()
        self.feature = recognition_head()
        self.with_map = with_map
        self.spec = swinface_spec(frames, with_map)
        if sorted(self.shifted) != self.spec.config["shifted_blocks"]:  # the spec must describe the model
            raise RuntimeError(f"SwinFace shifts blocks {sorted(self.shifted)}, its spec says "
                               f"{self.spec.config['shifted_blocks']}")

    def _match_reference_shifts(self) -> set[tuple[int, int]]:
        """The reference (Microsoft Swin) neither shifts nor masks windows in a stage whose
        resolution is not larger than the window (`if min(input_resolution) <= window_size:
        shift_size = 0`): here the last stage, 7x7 tokens with window 7. mmpose shifts every odd
        block regardless, so switch those shifts off. Returns the (stage, block) pairs that shift."""
        shifted = set()
        resolution = IMAGE_SIZE // PATCH
        for i, stage in enumerate(self.backbone.stages):
            assert resolution >= WINDOW, "the reference would shrink the window here; not supported"
            for j, block in enumerate(stage.blocks):
                if resolution <= WINDOW:
                    block.attn.shift_size = 0
                if block.attn.shift_size > 0:
                    shifted.add((i, j))
            resolution //= 2
        return shifted

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

    def load_checkpoint(self, path: str, trust: bool = False, strict: bool = True) -> LoadReport:
        """The official SwinFace checkpoint (`state_dict_backbone`, ... in Microsoft Swin naming),
        or a state_dict of this module (`backbone.*` in mmpose naming + `feature.*`)."""
        from . import convert_swinface
        from .weights import describe_formats, detect_format

        ckpt = read_checkpoint(path, trust)
        fmt = detect_format(ckpt)
        if fmt == "swinface-official":
            # Only state_dict_backbone feeds the embedding; fam/tss/om (the analysis subnets)
            # and any training extras are not used.
            state, dropped, unknown, problems = convert_swinface.convert(
                ckpt["state_dict_backbone"], self.state_dict(), self.shifted)
            if problems:
                message = f"{path} (official SwinFace format): " + "; ".join(problems)
                if strict:
                    raise CheckpointError(message)
                log.warning("NON-STRICT load: %s", message)
            report = LoadReport(str(path), fmt, dropped=dropped)
            return load_strict(self, state, path, strict=strict, report=report,
                               unmapped=[f"state_dict_backbone.{k}" for k in unknown],
                               source_name=lambda k: "state_dict_backbone." + convert_swinface.source_key(k))
        if fmt == "migue-swinface":
            state = dict(ckpt.get("state_dict", ckpt))
            return load_strict(self, state, path, strict=strict, report=LoadReport(str(path), fmt))
        raise CheckpointError(f"{path} is not a SwinFace checkpoint (detected format: {fmt}); "
                              f"the face modality reads: {describe_formats('swinface')}")


@register_extractor("swinface", "SwinFace: Swin-T (mmpose, 112px, patch 2, window 7) + 512-d head",
                    spec=swinface_spec, formats=("swinface-official", "migue-swinface"))
def build_swinface(frames: int = 8, with_map: bool = False) -> SwinFaceExtractor:
    return SwinFaceExtractor(frames=frames, with_map=with_map)
