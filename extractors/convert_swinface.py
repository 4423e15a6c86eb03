"""The official SwinFace checkpoint -> migue's SwinFace extractor (mmpose Swin + `feature` head).

The release (`checkpoint_step_79999_gpu_0.pt`, github lxq1000/SwinFace) is a dict with
`state_dict_backbone`, `state_dict_fam`, `state_dict_tss`, `state_dict_om` (training
checkpoints add `state_dict_softmax_fc`, `state_optimizer`, `state_lr_scheduler`). Only the
backbone is needed for the 512-d recognition embedding: in the reference
(`swinface_project/backbones/swin.py`) embedding = feature(avgpool(norm(x))). Its keys use
Microsoft's Swin naming. Reference -> migue (mmpose `SwinTransformer` + `feature`), and how:

- patch_embed.proj / patch_embed.norm -> backbone.patch_embed.projection / .norm: renamed.
- layers.i.blocks.j.attn.{qkv,proj} -> backbone.stages.i.blocks.j.attn.w_msa.{qkv,proj}:
  renamed; both reshape qkv to (B, N, 3, heads, d), scale head_dim ** -0.5.
- ...attn.relative_position_bias_table -> ...attn.w_msa.relative_position_bias_table: renamed,
  same ((2w - 1)^2, heads) table.
- ...attn.relative_position_index (buffer) -> checked equal to mmpose's own index (both index
  the table the same way), not copied.
- layers.i.blocks.j.attn_mask (buffer) -> not copied: mmpose builds the same -100 mask in its
  forward. Which blocks carry one tells which blocks shift; that set is checked against migue's.
- layers.i.blocks.j.mlp.fc1 / fc2 -> ...ffn.layers.0.0 / ffn.layers.1: renamed.
- layers.i.downsample.norm / .reduction -> backbone.stages.i.downsample.norm / .reduction:
  channels PERMUTED. The reference concatenates x0 (even row, even col), x1 (odd, even),
  x2 (even, odd), x3 (odd, odd) block by block; mmpose's nn.Unfold gives channel-major
  (c, kh, kw) order. See merge_permutation.
- norm (final LayerNorm) -> backbone.norm3 (the out_indices=(3,) output norm): renamed.
- feature.0-3 (Linear 768-768, BN 768, Linear 768-512, BN 512; no biases, eps 2e-5) -> feature.0-3.
- head (Linear 768-512, which the reference forward never uses) -> dropped.

Two behaviours are not weights and are fixed in the model instead (extractors/swinface.py):
the reference neither shifts nor masks windows in a stage whose resolution is not larger than
the window (its last stage: 7x7 tokens, window 7), while mmpose would shift there; and its
`feature` head is Linear(768, 768)-BN(768)-Linear(768, 512)-BN(512).
"""
from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from .checkpoints import rename

SUBNETS = ("state_dict_backbone", "state_dict_fam", "state_dict_tss", "state_dict_om")
TRAINING_EXTRAS = ("state_dict_softmax_fc", "state_optimizer", "state_lr_scheduler")
DROPPED_BACKBONE_KEYS = ("head.weight", "head.bias")

_BLOCK_RULES = [  # (reference suffix within layers.i.blocks.j, migue suffix)
    (r"norm([12])\.(weight|bias)", r"norm\1.\2"),
    (r"attn\.(qkv|proj)\.(weight|bias)", r"attn.w_msa.\1.\2"),
    (r"attn\.relative_position_bias_table", r"attn.w_msa.relative_position_bias_table"),
    (r"mlp\.fc1\.(weight|bias)", r"ffn.layers.0.0.\1"),
    (r"mlp\.fc2\.(weight|bias)", r"ffn.layers.1.\1"),
]


def is_swinface_official(ckpt: Mapping[str, object]) -> bool:
    return "state_dict_backbone" in ckpt


def merge_permutation(channels: int) -> torch.Tensor:
    """perm such that mmpose_tensor[..., j] = reference_tensor[..., perm[j]] for 4*C merged channels.

    mmpose (nn.Unfold, kernel 2): j = c*4 + kh*2 + kw. Reference: block b = kh + 2*kw
    (x0 = (0, 0), x1 = (1, 0), x2 = (0, 1), x3 = (1, 1)), index b*C + c.
    """
    j = torch.arange(4 * channels)
    c, k = j // 4, j % 4
    kh, kw = k // 2, k % 2
    return (kh + 2 * kw) * channels + c


def convert(backbone: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor],
            shifted: set[tuple[int, int]]) -> tuple[dict[str, torch.Tensor], list[str], list[str], list[str]]:
    """(migue state, dropped reference keys, reference keys with no counterpart, geometry problems).

    `own` is the target model's state_dict (for the derived buffers); `shifted` the (stage, block)
    pairs whose windows migue shifts.
    """
    if backbone and all(k.startswith("module.") for k in backbone):  # saved from a DDP wrapper
        backbone = {k[len("module."):]: v for k, v in backbone.items()}
    out: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    unknown: list[str] = []
    problems: list[str] = []
    masked: set[tuple[int, int]] = set()
    for key, value in backbone.items():
        if key in DROPPED_BACKBONE_KEYS:
            dropped.append(key)
        elif m := re.fullmatch(r"patch_embed\.(proj|norm)\.(weight|bias)", key):
            out[f"backbone.patch_embed.{'projection' if m.group(1) == 'proj' else 'norm'}.{m.group(2)}"] = value
        elif m := re.fullmatch(r"norm\.(weight|bias)", key):
            out[f"backbone.norm3.{m.group(1)}"] = value
        elif m := re.fullmatch(r"feature\.(\d)\.(.+)", key):
            out[key] = value
        elif m := re.fullmatch(r"layers\.(\d+)\.downsample\.(norm|reduction)\.(weight|bias)", key):
            perm = merge_permutation(value.shape[-1] // 4)
            out[f"backbone.stages.{m.group(1)}.downsample.{m.group(2)}.{m.group(3)}"] = value[..., perm].contiguous()
        elif m := re.fullmatch(r"layers\.(\d+)\.blocks\.(\d+)\.attn_mask", key):
            masked.add((int(m.group(1)), int(m.group(2))))
            dropped.append(key)
        elif m := re.fullmatch(r"layers\.(\d+)\.blocks\.(\d+)\.attn\.relative_position_index", key):
            target = f"backbone.stages.{m.group(1)}.blocks.{m.group(2)}.attn.w_msa.relative_position_index"
            if target in own and not torch.equal(own[target], value.to(own[target].dtype)):
                problems.append(f"{key} differs from the index migue's window attention uses")
            dropped.append(key)
        elif (m := re.fullmatch(r"layers\.(\d+)\.blocks\.(\d+)\.(.+)", key)) and (new := rename(m.group(3), _BLOCK_RULES)):
            out[f"backbone.stages.{m.group(1)}.blocks.{m.group(2)}.{new}"] = value
        else:
            unknown.append(key)
    if masked != shifted:
        problems.append(f"the checkpoint shifts windows in blocks {sorted(masked)} (those with an attn_mask), "
                        f"migue in {sorted(shifted)}: a different geometry (image size, patch or window size)")
    for key, value in own.items():  # derived buffers: computed by the model itself
        if key.endswith("relative_position_index") and key not in out:
            out[key] = value
    return out, dropped, unknown, problems


def source_key(key: str) -> str:
    """The reference (Microsoft Swin) name of a migue SwinFace key (for error messages)."""
    if m := re.fullmatch(r"backbone\.patch_embed\.(projection|norm)\.(weight|bias)", key):
        return f"patch_embed.{'proj' if m.group(1) == 'projection' else 'norm'}.{m.group(2)}"
    if m := re.fullmatch(r"backbone\.norm3\.(weight|bias)", key):
        return f"norm.{m.group(1)}"
    if m := re.fullmatch(r"backbone\.stages\.(\d+)\.downsample\.(.+)", key):
        return f"layers.{m.group(1)}.downsample.{m.group(2)}"
    if m := re.fullmatch(r"backbone\.stages\.(\d+)\.blocks\.(\d+)\.(.+)", key):
        suffix = rename(m.group(3), _INVERSE_RULES) or m.group(3)
        return f"layers.{m.group(1)}.blocks.{m.group(2)}.{suffix}"
    return key


_INVERSE_RULES = [
    (r"attn\.w_msa\.(.+)", r"attn.\1"),
    (r"ffn\.layers\.0\.0\.(weight|bias)", r"mlp.fc1.\1"),
    (r"ffn\.layers\.1\.(weight|bias)", r"mlp.fc2.\1"),
]

