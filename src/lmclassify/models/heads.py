"""Heads: pooled features (B, D) -> outputs (B, C). No model-family knowledge.

The default decoder classifier keeps transformers' own ``score`` layer as its head, so
plain ``transformers`` loads the output directory. Everything else (encoders, an MLP,
siamese pairs whose input is [u, v, |u-v|]) uses one of these modules, saved in
``lmclassify_extra.safetensors`` beside the transformers weights.
"""
from __future__ import annotations

import torch
from torch import nn

# "logistic" is a Linear whose weights come from scikit-learn (training/logistic_head.py).
HEADS = ("linear", "mlp", "logistic")


class MLPHead(nn.Sequential):
    """Linear, GELU, dropout, Linear: one hidden layer as wide as its input.

    >>> MLPHead(384, 2)(torch.zeros(8, 384)).shape
    torch.Size([8, 2])
    """

    def __init__(self, in_features: int, out_features: int, dropout: float = 0.1):
        super().__init__(nn.Linear(in_features, in_features), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(in_features, out_features))


def make_head(kind: str, in_features: int, out_features: int, dropout: float = 0.1) -> nn.Module:
    """A freshly initialised head: N(0, 0.02) weights and zero biases, as transformers
    initialises its own heads (seed the global RNG first for a reproducible head)."""
    if kind not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, not {kind!r}")
    head = MLPHead(in_features, out_features, dropout) if kind == "mlp" else nn.Linear(in_features, out_features)
    for m in head.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
    return head


def siamese_features(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(B, H), (B, H) -> (B, 3H): [u, v, |u - v|], the SBERT classification input."""
    return torch.cat([u, v, (u - v).abs()], dim=-1)
