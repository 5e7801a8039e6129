"""Poolers: (B, T, H) hidden states + (B, T) mask -> (B, H). No model-family knowledge."""
from __future__ import annotations

import torch
from torch import nn

POOLINGS = ("last", "cls", "mean", "max", "attention")


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last non-padding token per row, from the mask alone, so it is right
    under left or right padding and when the pad id equals EOS or occurs in the text."""
    T = attention_mask.shape[-1]
    positions = torch.arange(T, device=attention_mask.device).expand_as(attention_mask)
    return (positions * attention_mask.long()).argmax(-1)  # (B,)


def pool_last(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    idx = last_token_index(attention_mask)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), idx]


def pool_cls(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    first = attention_mask.long().argmax(-1)  # first real token, also under left padding
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), first]


def pool_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def pool_max(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    neg = torch.finfo(hidden.dtype).min
    return hidden.masked_fill(~attention_mask.bool().unsqueeze(-1), neg).max(1).values


class AttentionPool(nn.Module):
    """A learned query attending over all non-padding tokens."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.query = nn.Parameter(torch.randn(hidden_size) * 0.02)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        scores = hidden @ self.query / hidden.shape[-1] ** 0.5  # (B, T)
        scores = scores.masked_fill(~attention_mask.bool(), torch.finfo(scores.dtype).min)
        w = scores.softmax(-1).unsqueeze(-1)  # (B, T, 1)
        return (w * hidden).sum(1)


class Pooler(nn.Module):
    """``normalize``: unit-length output (``--embedding-norm l2``), the last step of a
    sentence-transformers encoder; no parameters, so nothing to save but the flag."""

    def __init__(self, kind: str, hidden_size: int, normalize: bool = False):
        super().__init__()
        if kind not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, not {kind!r}")
        self.kind = kind
        self.normalize = normalize
        self.attn = AttentionPool(hidden_size) if kind == "attention" else None
        self._fn = {"last": pool_last, "cls": pool_cls, "mean": pool_mean, "max": pool_max}.get(kind)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pooled = self.attn(hidden, attention_mask) if self.attn is not None else self._fn(hidden, attention_mask)
        return nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled
