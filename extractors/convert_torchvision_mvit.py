"""torchvision `mvit_v2_s` state_dict -> mmaction2 `MViT(arch='small')` backbone state_dict.

The two implementations compute the same function; only names and one shape differ.
Compared module by module (torchvision/models/video/mvit.py against
mmaction/models/backbones/mvit.py, mmaction2 1.2.0), torchvision -> mmaction2:

- conv_proj (Conv3d 3x7x7, stride 2x4x4, padding 1x3x3) -> patch_embed.projection: renamed;
  neither has a norm after the patch embedding.
- pos_encoding.class_token (D,) -> cls_token (1, 1, D): reshaped. Both prepend it before
  block 0 (position 0) and read it back at position 0; with relative positions neither has
  absolute position embeddings (torchvision rel_pos_embed=True, mmaction2 use_abs_pos_embed=False).
- blocks.i.attn.qkv -> blocks.i.attn.qkv: same layout, both reshape to (B, N, 3, heads, head_dim).
- blocks.i.attn.pool_{q,k,v}.pool (depthwise Conv3d, no bias) -> blocks.i.attn.pool_{q,k,v}.
- blocks.i.attn.pool_{q,k,v}.norm_act.0 (LayerNorm) -> blocks.i.attn.norm_{q,k,v}: both pool the
  patch tokens, put the class token back, then normalise all of them (eps 1e-6 on both sides).
- blocks.i.attn.rel_pos_{h,w,t} -> same names: same shapes and the same decomposed
  relative-position formula (q/k ratio scaling, added to the patch-patch attention only).
- blocks.i.attn.project.0 -> blocks.i.attn.proj.
- residual pooling without the class token (residual_pool=True, residual_with_cls_embed=False)
  = mmaction2's residual_pooling with with_cls_token=True: nothing to map.
- blocks.i.project -> blocks.i.proj: both project the normed input when the width doubles
  (torchvision proj_after_attn=True = mmaction2 dim_mul_in_attention=True).
- blocks.i.mlp.0 / mlp.3 (torchvision.ops.MLP: Linear, GELU, Dropout, Linear, Dropout)
  -> blocks.i.mlp.fc1 / fc2.
- blocks.i.norm1 / norm2 -> same names (LayerNorm eps 1e-6).
- norm (final LayerNorm over all tokens) -> norm3 (the output norm of out_scales=-1): mmaction2
  returns the normed class token and normed patch tokens, torchvision's head reads norm(x)[:, 0].
- head.0 Dropout + head.1 Linear(768, 400) -> dropped: the head is removed.

The block settings (heads 1-2-2-4x11-8-8, widths, q strides at blocks 1, 3 and 14, kv strides
from 1x8x8 halved at each q stride, 3x3x3 pooling kernels everywhere) equal mmaction2's
`arch='small'` defaults, and so do the input statistics (torchvision: mean 0.45, std 0.225 on
[0, 1]; mmaction2's config: 114.75 / 57.375 on [0, 255]).
"""
from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from .checkpoints import rename

MARKERS = ("conv_proj.weight", "pos_encoding.class_token")
DROPPED_PREFIXES = ("head.",)  # the Kinetics-400 classifier

_BLOCK_RULES = [  # (torchvision suffix pattern, mmaction2 suffix template), per block
    (r"norm([12])\.(weight|bias)", r"norm\1.\2"),
    (r"attn\.qkv\.(weight|bias)", r"attn.qkv.\1"),
    (r"attn\.rel_pos_([hwt])", r"attn.rel_pos_\1"),
    (r"attn\.project\.0\.(weight|bias)", r"attn.proj.\1"),
    (r"attn\.pool_([qkv])\.pool\.weight", r"attn.pool_\1.weight"),
    (r"attn\.pool_([qkv])\.norm_act\.0\.(weight|bias)", r"attn.norm_\1.\2"),
    (r"mlp\.0\.(weight|bias)", r"mlp.fc1.\1"),
    (r"mlp\.3\.(weight|bias)", r"mlp.fc2.\1"),
    (r"project\.(weight|bias)", r"proj.\1"),
]


def is_torchvision_mvit(state: Mapping[str, object]) -> bool:
    return all(k in state for k in MARKERS)


def convert(state: Mapping[str, torch.Tensor], final_norm: str = "norm3"
            ) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """(mmaction2 backbone state, dropped torchvision keys, torchvision keys with no counterpart)."""
    out: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    unknown: list[str] = []
    for key, value in state.items():
        if key.startswith(DROPPED_PREFIXES):
            dropped.append(key)
        elif key in ("conv_proj.weight", "conv_proj.bias"):
            out["patch_embed.projection." + key.split(".")[-1]] = value
        elif key == "pos_encoding.class_token":
            out["cls_token"] = value.reshape(1, 1, -1)
        elif key in ("norm.weight", "norm.bias"):
            out[f"{final_norm}.{key.split('.')[-1]}"] = value
        elif (m := re.fullmatch(r"blocks\.(\d+)\.(.+)", key)) and (new := rename(m.group(2), _BLOCK_RULES)):
            out[f"blocks.{m.group(1)}.{new}"] = value
        else:  # e.g. pos_encoding.spatial_pos of MViTv1 (absolute positions): no counterpart
            unknown.append(key)
    return out, dropped, unknown


def source_key(key: str) -> str:
    """The torchvision name of an mmaction2 backbone key (for error messages)."""
    fixed = {"cls_token": "pos_encoding.class_token"}
    if key in fixed:
        return fixed[key]
    if m := re.fullmatch(r"patch_embed\.projection\.(weight|bias)", key):
        return f"conv_proj.{m.group(1)}"
    if m := re.fullmatch(r"norm\d+\.(weight|bias)", key):
        return f"norm.{m.group(1)}"
    if m := re.fullmatch(r"(blocks\.\d+\.)(.+)", key):
        if (old := rename(m.group(2), _INVERSE_RULES)) is not None:
            return m.group(1) + old
    return key


_INVERSE_RULES = [
    (r"attn\.proj\.(weight|bias)", r"attn.project.0.\1"),
    (r"attn\.pool_([qkv])\.weight", r"attn.pool_\1.pool.weight"),
    (r"attn\.norm_([qkv])\.(weight|bias)", r"attn.pool_\1.norm_act.0.\2"),
    (r"mlp\.fc1\.(weight|bias)", r"mlp.0.\1"),
    (r"mlp\.fc2\.(weight|bias)", r"mlp.3.\1"),
    (r"proj\.(weight|bias)", r"project.\1"),
]

