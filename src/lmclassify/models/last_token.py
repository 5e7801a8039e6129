"""The final block, computed for the last real token only.

When the classifier reads only the last token, the final block still needs keys and
values at every position, but queries, the attention output, the MLP and the norms only
at that one token. On short texts that removes ~90 % of the final block's work, forward
and backward. This runs the block's own modules (no copied weights); it applies to the
pre-norm rotary blocks of the Llama family (Llama, SmolLM, Mistral, Qwen2), recognised
by their parts. Everything else takes the ordinary full path.
"""
from __future__ import annotations

import importlib

import torch
import torch.nn.functional as F
from torch import nn

_PARTS = ("input_layernorm", "self_attn", "post_attention_layernorm", "mlp")
_ATTN_PARTS = ("q_proj", "k_proj", "v_proj", "o_proj", "head_dim", "scaling")


def supported(base: nn.Module, layer: nn.Module) -> bool:
    attn = getattr(layer, "self_attn", None)
    return (
        all(hasattr(layer, p) for p in _PARTS)
        and attn is not None and all(hasattr(attn, p) for p in _ATTN_PARTS)
        and not hasattr(attn, "q_norm")  # Qwen3/OLMo-2 style q/k norms: not this shape
        and getattr(attn, "sliding_window", None) is None
        and hasattr(base, "rotary_emb") and _rotary_fn(base) is not None
    )


def _rotary_fn(base: nn.Module):
    mod = importlib.import_module(type(base).__module__)
    return getattr(mod, "apply_rotary_pos_emb", None)


def last_block_last_token(base: nn.Module, layer: nn.Module, hidden: torch.Tensor,
                          attention_mask: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """hidden (B, T, H) entering ``layer``; returns its output at position idx[b]: (B, H)."""
    B, T, _ = hidden.shape
    attn = layer.self_attn
    hd = attn.head_dim
    rows = torch.arange(B, device=hidden.device)
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, T), as Backbone uses
    x = layer.input_layernorm(hidden)  # (B, T, H)
    xq = x[rows, idx].unsqueeze(1)  # (B, 1, H)
    q = attn.q_proj(xq).view(B, 1, -1, hd).transpose(1, 2)  # (B, nh, 1, hd)
    k = attn.k_proj(x).view(B, T, -1, hd).transpose(1, 2)  # (B, nkv, T, hd)
    v = attn.v_proj(x).view(B, T, -1, hd).transpose(1, 2)
    cos, sin = base.rotary_emb(x, position_ids)  # (B, T, hd)
    apply_rotary = _rotary_fn(base)
    q, _ = apply_rotary(q, q, cos[rows, idx].unsqueeze(1), sin[rows, idx].unsqueeze(1))
    k, _ = apply_rotary(k, k, cos, sin)
    groups = q.shape[1] // k.shape[1]  # grouped-query attention
    k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
    j = torch.arange(T, device=hidden.device)
    allowed = attention_mask.bool() & (j.unsqueeze(0) <= idx.unsqueeze(1))  # (B, T) causal + padding
    o = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None, None, :], scale=attn.scaling,
                                       dropout_p=attn.attention_dropout if layer.training else 0.0)
    o = attn.o_proj(o.transpose(1, 2).reshape(B, 1, -1))  # (B, 1, H)
    h = hidden[rows, idx].unsqueeze(1) + o
    h = h + layer.mlp(layer.post_attention_layernorm(h))
    return h.squeeze(1)  # (B, H)
