"""int8 inference on the CPU: weights int8 per output channel, activations int8 per token
(scaled on the fly), one integer matmul (``torch._int_mm``) per layer.

Why not ``torch.ao.quantization.quantize_dynamic``: it is deprecated, it scales a whole
batch of activations by one number, and it is slower. Deep decoders carry *massive
activations* (Sun et al., 2024): a few tokens (the first one, delimiters) hold values
~1,000x the rest in a couple of channels of the MLP's down projection input (SmolLM2-135M:
abs-max 3,065 vs RMS 9 at block 11). One scale per batch lets those tokens crush every
other token (SMS spam: 97.3 % -> 66.3 %). Per-token scales confine the damage to the
outlier token itself, and the MLP output projections compute those few tokens in fp32
(a row whose abs-max exceeds ``OUTLIER_RATIO`` x the batch median), which brings the
predictions back to the fp32 ones (SMS spam: 300/300 labels agree, bench/speed.py).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D  # GPT-2's linear layer, weight (in, out)

# A row this many times the batch's median abs-max is a massive-activation token.
OUTLIER_RATIO = 16.0


class Int8Linear(nn.Module):
    """``y = x W^T + b`` with W int8 per output row and x int8 per token.

    ``exact_outliers`` keeps an fp32 copy of W for the rare massive-activation rows."""

    def __init__(self, weight: torch.Tensor, bias: Optional[torch.Tensor], exact_outliers: bool = False):
        super().__init__()
        w = weight.detach().float()  # (out, in)
        scale = w.abs().amax(1).clamp(min=1e-8) / 127
        # _int_mm takes (in, out): a transposed view, no copy.
        self.register_buffer("qweight", torch.round(w / scale[:, None]).to(torch.int8).t())
        self.register_buffer("wscale", scale)
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())
        self.register_buffer("weight_fp32", w.clone() if exact_outliers else None)
        self.in_features, self.out_features = w.shape[1], w.shape[0]

    @classmethod
    def from_module(cls, m: nn.Module, exact_outliers: bool = False) -> "Int8Linear":
        """From ``nn.Linear`` or transformers' ``Conv1D`` (GPT-2), whose weight is (in, out)."""
        weight = m.weight.t() if isinstance(m, Conv1D) else m.weight
        return cls(weight, m.bias, exact_outliers)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"exact_outliers={self.weight_fp32 is not None}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, shape[-1]).float()
        amax = x2.abs().amax(1, keepdim=True).clamp_(min=1e-8)  # (N, 1)
        scale = amax / 127
        q = x2.div(scale).round_().to(torch.int8)
        y = torch._int_mm(q, self.qweight).float().mul_(scale).mul_(self.wscale)  # (N, out)
        if self.bias is not None:
            y.add_(self.bias)
        if self.weight_fp32 is not None and x2.shape[0] > 1:
            rows = (amax.squeeze(1) > OUTLIER_RATIO * amax.median()).nonzero().squeeze(1)
            if rows.numel():
                exact = x2[rows] @ self.weight_fp32.t()
                y[rows] = exact if self.bias is None else exact + self.bias
        return y.reshape(*shape[:-1], self.out_features).to(x.dtype)


def _mlp_inner_width(modules: list[nn.Module]) -> Optional[int]:
    """The MLP's inner width: the widest input among the layers, when it narrows to the output."""
    dims = [_in_out(m) for m in modules]
    widest = max((i for i, _ in dims), default=None)
    return widest if widest is not None and any(i == widest > o for i, o in dims) else None


def _in_out(m: nn.Module) -> tuple[int, int]:
    w = m.weight
    return (w.shape[0], w.shape[1]) if isinstance(m, Conv1D) else (w.shape[1], w.shape[0])


def quantize_int8(model: nn.Module, keep: set[int] = frozenset()) -> int:
    """Swap every Linear/Conv1D in ``model`` (except modules whose id is in ``keep``) for an
    ``Int8Linear`` in place; MLP output projections keep exact outlier rows. Returns how many."""
    targets = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
               if isinstance(child, (nn.Linear, Conv1D)) and id(child) not in keep]
    inner = _mlp_inner_width([c for _, _, c in targets])
    for parent, name, child in targets:
        i, o = _in_out(child)
        setattr(parent, name, Int8Linear.from_module(child, exact_outliers=(i == inner and i > o)))
    return len(targets)
