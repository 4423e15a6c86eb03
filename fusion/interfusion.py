"""InterFusion for behaviour-based emotion (win/lose) prediction, one logit per video.

Per window: face tokens (F SwinFace frame embeddings) and context tokens (MViTv2-S,
pooled as configured at load time: cls, per time step, or all) are projected to width d
and exchanged by bidirectional cross-attention layers with a learned gate,
    x <- g * attend(x, y) + (1 - g) * x,   g = sigmoid(Linear([x, attend(x, y)])),
then mean-pooled and merged into one window embedding. Attention pooling over a video's
windows (padding masked out) gives the video embedding and its logit.

Design choices (the paper does not publish the internals): width 256, 2 gated layers,
4 heads, learned position embeddings per window token; only real windows are computed
(padded ones never enter the layers).
"""
from __future__ import annotations

import torch
from torch import nn

from .layers import init_weights, mlp
from .registry import register_head
from .settings import ATTENTION_HEADS


class GatedCrossAttention(nn.Module):
    """Tokens x attend to tokens y; a learned sigmoid gate mixes the attended and the original x."""

    def __init__(self, d: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.ln_x, self.ln_y = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, num_heads, dropout=dropout, batch_first=True)
        self.gate = nn.Linear(2 * d, d)
        self.ln_mlp = nn.LayerNorm(d)
        self.mlp = mlp(d, dropout)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y_n = self.ln_y(y)                                                   # (N, Ly, d)
        a = self.attn(self.ln_x(x), y_n, y_n, need_weights=False)[0]         # (N, Lx, d)
        g = torch.sigmoid(self.gate(torch.cat([x, a], dim=-1)))              # (N, Lx, d)
        x = g * a + (1 - g) * x                                              # (N, Lx, d)
        return x + self.mlp(self.ln_mlp(x))                                  # (N, Lx, d)


class InterFusion(nn.Module):
    """batch {'face': (B, W, F, Df), 'context': (B, W, Lc, Dc), 'mask': (B, W) bool} -> logits (B,)."""

    def __init__(self, shapes: dict[str, tuple[int, int]], width: int = 256, depth: int = 2,
                 num_heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        d = width
        (face_len, face_dim), (ctx_len, ctx_dim) = shapes["face"], shapes["context"]
        self.proj_face = nn.Sequential(nn.LayerNorm(face_dim), nn.Linear(face_dim, d))
        self.proj_ctx = nn.Sequential(nn.LayerNorm(ctx_dim), nn.Linear(ctx_dim, d))
        self.pos_face = nn.Parameter(torch.zeros(1, face_len, d))
        self.pos_ctx = nn.Parameter(torch.zeros(1, ctx_len, d))
        self.face_from_ctx = nn.ModuleList(GatedCrossAttention(d, num_heads, dropout) for _ in range(depth))
        self.ctx_from_face = nn.ModuleList(GatedCrossAttention(d, num_heads, dropout) for _ in range(depth))
        self.merge = nn.Sequential(nn.LayerNorm(2 * d), nn.Linear(2 * d, d), nn.GELU())
        self.pool_score = nn.Sequential(nn.Linear(d, d), nn.Tanh(), nn.Linear(d, 1))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, 1)
        self.apply(init_weights)
        for p in (self.pos_face, self.pos_ctx):
            nn.init.trunc_normal_(p, std=0.02)

    def windows(self, face: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Window embeddings of N real windows: (N, F, Df), (N, Lc, Dc) -> (N, d)."""
        f = self.proj_face(face) + self.pos_face                             # (N, F, d)
        c = self.proj_ctx(context) + self.pos_ctx                            # (N, Lc, d)
        for f_layer, c_layer in zip(self.face_from_ctx, self.ctx_from_face):
            f, c = f_layer(f, c), c_layer(c, f)                              # both from the old pair
        return self.merge(torch.cat([f.mean(1), c.mean(1)], dim=-1))         # (N, d)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = batch["mask"]                                                 # (B, W)
        w = self.windows(batch["face"][mask], batch["context"][mask])        # (N, d), N = mask.sum()
        h = w.new_zeros(*mask.shape, w.shape[-1])                            # (B, W, d)
        h[mask] = w
        score = self.pool_score(h).squeeze(-1).masked_fill(~mask, float("-inf"))  # (B, W)
        attn = score.softmax(dim=-1).unsqueeze(-1)                           # (B, W, 1)
        video = (attn * h).sum(dim=1)                                        # (B, d)
        return self.head(self.ln(video)).squeeze(-1)                         # (B,)


# fits a binary task of videos with face and context streams (emotion, and plugin tasks like it)
@register_head("interfusion", tasks=lambda task: task.items == "video" and task.binary
               and {"face", "context"} <= set(task.streams), inputs=("face", "context"),
               settings={"width": 256, "depth": 2, "num_heads": 4, "dropout": 0.1},
               ranges={"width": (1, None), "depth": (1, None), "num_heads": (1, None), "dropout": (0, 1)},
               check=ATTENTION_HEADS,
               description="InterFusion: gated bidirectional face<->context cross-attention per window, "
                           "attention pooling over a video's windows")
def interfusion(shapes: dict[str, tuple[int, int]], num_classes: int, width: int, depth: int, num_heads: int,
                dropout: float) -> InterFusion:
    return InterFusion(shapes, width, depth, num_heads, dropout)
