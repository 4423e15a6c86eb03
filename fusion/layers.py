"""Transformer parts shared by the fusion heads: a pre-norm attention block and its MLP."""
from __future__ import annotations

import torch
from torch import nn


def mlp(d: int, dropout: float, ratio: int = 4) -> nn.Sequential:
    """The transformer feed-forward: d -> ratio*d -> d."""
    return nn.Sequential(nn.Linear(d, ratio * d), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(ratio * d, d), nn.Dropout(dropout))


class Block(nn.Module):
    """Pre-norm transformer block. Self-attention, or (cross=True) queries x attend to a context."""

    def __init__(self, d: int, num_heads: int, dropout: float, cross: bool = False) -> None:
        super().__init__()
        self.ln_q = nn.LayerNorm(d)
        self.ln_kv = nn.LayerNorm(d) if cross else None
        self.attn = nn.MultiheadAttention(d, num_heads, dropout=dropout, batch_first=True)
        self.ln_mlp = nn.LayerNorm(d)
        self.mlp = mlp(d, dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        q = self.ln_q(x)                                          # (B, N, d)
        kv = q if self.ln_kv is None else self.ln_kv(context)     # (B, M, d)
        x = x + self.attn(q, kv, kv, need_weights=False)[0]       # (B, N, d)
        return x + self.mlp(self.ln_mlp(x))                       # (B, N, d)


def init_weights(module: nn.Module) -> None:
    """Truncated-normal linear weights, zero biases (ViT-style); use with `module.apply`."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
