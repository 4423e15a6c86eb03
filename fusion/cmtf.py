"""Cross-Modal Token Fusion (CMTF) for micro-gesture classification.

RGB tokens (MViTv2-S) and pose tokens (2s-AGCN joint and bone streams) are projected
to one width d, tagged with learned modality and position embeddings, and fused with a
learnable [CLS] token by a small transformer:
- mode 'joint': self-attention over [CLS, rgb..., joint..., bone...];
- mode 'cross': per layer, rgb attends to pose and pose to rgb (bidirectional
  cross-attention), then the [CLS] token attends to all fused tokens.
The logits come from the [CLS] token. Tokens arrive already pooled as configured at load
time (e.g. rgb 'time': one token per time step of the T'xH'xW' grid).

Design choices (the paper does not publish the internals): pre-norm blocks, width 256,
2 layers, 4 heads; joint and bone share the pose position embeddings and differ by
their modality embedding; modality dropout blanks the rgb or the pose tokens' content
(their embeddings stay) for a random subset of training samples.
"""
from __future__ import annotations

import torch
from torch import nn

from .layers import Block, init_weights
from .registry import register_head, view
from .settings import ATTENTION_HEADS

MODES = ("joint", "cross")


class CMTF(nn.Module):
    """batch {'rgb': (B, Lr, Dr), <pose stream>: (B, Lp, Dp) ...} -> logits (B, num_classes)."""

    def __init__(self, shapes: dict[str, tuple[int, int]], num_classes: int,
                 pose_streams: tuple[str, ...] = ("joint", "bone"), width: int = 256, depth: int = 2,
                 num_heads: int = 4, dropout: float = 0.1, mode: str = "joint",
                 modality_dropout: float = 0.0) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"cmtf mode {mode!r}: expected one of {MODES}")
        pose_lengths = {shapes[s][0] for s in pose_streams}
        if len(pose_lengths) != 1:
            raise ValueError(f"pose streams {list(pose_streams)} have different token counts {pose_lengths}")
        d, rgb_len, pose_len = width, shapes["rgb"][0], pose_lengths.pop()
        self.pose_streams, self.mode, self.modality_dropout = list(pose_streams), mode, modality_dropout
        self.proj = nn.ModuleDict({name: nn.Sequential(nn.LayerNorm(shapes[name][1]), nn.Linear(shapes[name][1], d))
                                   for name in ["rgb", *self.pose_streams]})
        self.pos_rgb = nn.Parameter(torch.zeros(1, rgb_len, d))
        self.pos_pose = nn.Parameter(torch.zeros(1, pose_len, d))
        self.modality = nn.Parameter(torch.zeros(1 + len(self.pose_streams), d))  # rgb, joint, bone
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        if mode == "joint":
            self.blocks = nn.ModuleList(Block(d, num_heads, dropout) for _ in range(depth))
        else:
            self.rgb_from_pose = nn.ModuleList(Block(d, num_heads, dropout, cross=True) for _ in range(depth))
            self.pose_from_rgb = nn.ModuleList(Block(d, num_heads, dropout, cross=True) for _ in range(depth))
            self.fuse = Block(d, num_heads, dropout, cross=True)
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, num_classes)
        self.apply(init_weights)
        for p in (self.pos_rgb, self.pos_pose, self.modality, self.cls):
            nn.init.trunc_normal_(p, std=0.02)

    def _keep_masks(self, batch_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample 0/1 multipliers for rgb and pose content: each dropped sample loses one modality."""
        ones = torch.ones(batch_size, 1, 1, device=device)
        if not self.training or self.modality_dropout <= 0:
            return ones, ones
        drop = torch.rand(batch_size, 1, 1, device=device) < self.modality_dropout   # (B, 1, 1)
        drop_rgb = torch.rand(batch_size, 1, 1, device=device) < 0.5                 # (B, 1, 1)
        return ones * ~(drop & drop_rgb), ones * ~(drop & ~drop_rgb)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        B = batch["rgb"].shape[0]
        keep_rgb, keep_pose = self._keep_masks(B, batch["rgb"].device)
        rgb = keep_rgb * self.proj["rgb"](batch["rgb"]) + self.pos_rgb + self.modality[0]     # (B, Lr, d)
        pose = torch.cat([keep_pose * self.proj[s](batch[s]) + self.pos_pose + self.modality[1 + i]
                          for i, s in enumerate(self.pose_streams)], dim=1)                   # (B, P*Lp, d)
        cls = self.cls.expand(B, -1, -1)                                                      # (B, 1, d)
        if self.mode == "joint":
            x = torch.cat([cls, rgb, pose], dim=1)                                            # (B, 1+Lr+P*Lp, d)
            for block in self.blocks:
                x = block(x)
            z = x[:, 0]                                                                       # (B, d)
        else:
            for r_block, p_block in zip(self.rgb_from_pose, self.pose_from_rgb):
                rgb, pose = r_block(rgb, pose), p_block(pose, rgb)                            # both from the old pair
            z = self.fuse(cls, torch.cat([rgb, pose], dim=1))[:, 0]                           # (B, d)
        return self.head(self.ln(z))                                                          # (B, num_classes)


# fits a multi-class task of clips with rgb and pose streams (mg, and plugin tasks over MG clips)
@register_head("cmtf", tasks=lambda task: task.items == "clip" and not task.binary
               and {"rgb", "joint", "bone"} <= set(task.streams),
               inputs=lambda task, cfg: {n: view(n, cfg) for n in ["rgb", *cfg["pose_streams"]]},
               settings={"width": 256, "depth": 2, "num_heads": 4, "dropout": 0.1,
                         "cmtf_mode": "joint",  # joint: self-attention over all tokens | cross: rgb<->pose
                         # chance per training sample of blanking rgb or pose (0.3: see benchmarks/RESULTS.md,
                         # 3 seeds: 0.815 ± 0.007 vs 0.606 ± 0.203 at 0)
                         "modality_dropout": 0.3,
                         "pose_streams": ["joint", "bone"]},  # 2s-AGCN streams fused with rgb
               choices={"cmtf_mode": MODES},
               ranges={"width": (1, None), "depth": (1, None), "num_heads": (1, None), "dropout": (0, 1),
                       "modality_dropout": (0, 1)},
               check=ATTENTION_HEADS,
               description="Cross-Modal Token Fusion: rgb + pose (joint, bone) tokens, transformer over a fusion "
                           "[CLS] (cmtf_mode joint | cross)")
def cmtf(shapes: dict[str, tuple[int, int]], num_classes: int, width: int, depth: int, num_heads: int,
         dropout: float, cmtf_mode: str, modality_dropout: float, pose_streams: list[str]) -> CMTF:
    return CMTF(shapes, num_classes, tuple(pose_streams), width, depth, num_heads, dropout, cmtf_mode,
                modality_dropout)
