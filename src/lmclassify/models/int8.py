"""int8 inference on the CPU: weights int8 per output channel, activations int8 per token
(scaled on the fly), one integer matmul per layer on the kernel this CPU runs fastest
(``models/int8_kernels.py``: ``torch._int_mm`` with VNNI/AMX, FBGEMM on AVX2).

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

from .int8_kernels import BY_NAME, choose_kernel

# A row this many times the batch's median abs-max is a massive-activation token.
OUTLIER_RATIO = 16.0


_MEMO = "_lmclassify_int8_input"  # the attribute a quantized input carries its quantization in


def _version(x: torch.Tensor) -> int:
    try:
        return x._version
    except RuntimeError:  # inference tensors keep no version counter
        return -1


def quantized_input(x: torch.Tensor, kernel) -> tuple[torch.Tensor, torch.Tensor, tuple]:
    """(x as float rows (N, in), per-row abs-max (N, 1), ``kernel.prepare`` of them).

    Layers that read the very same tensor (q/k/v; gate/up) quantize it once: 7
    quantizations per Llama block become 4, and quantizing was ~a quarter of SmolLM2's
    int8 time (profiled). The result rides on the tensor itself, so it lives exactly as
    long as the tensor; its version counter (where autograd keeps one) catches an
    in-place change."""
    x2 = x.reshape(-1, x.shape[-1]).float()  # a view of x: never stored on x (a cycle through C++)
    memo = getattr(x, _MEMO, None)
    if memo is not None and memo[0] == kernel.name and memo[1] == _version(x):
        return x2, memo[2], memo[3]
    amax = x2.abs().amax(1, keepdim=True).clamp_(min=1e-8)  # (N, 1): one scale per token
    prepared = kernel.prepare(x2, amax)
    setattr(x, _MEMO, (kernel.name, _version(x), amax, prepared))
    return x2, amax, prepared


class Int8Linear(nn.Module):
    """``y = x W^T + b`` with W int8 per output row and x int8 per token, on the integer
    kernel this CPU runs fastest (``models/int8_kernels.py``).

    ``exact_outliers`` keeps an fp32 copy of W for the rare massive-activation rows."""

    def __init__(self, weight: torch.Tensor, bias: Optional[torch.Tensor], exact_outliers: bool = False,
                 kernel: str = "int_mm"):
        super().__init__()
        w = weight.detach().float()  # (out, in)
        self.kernel = kernel
        self._mm = BY_NAME[kernel](w)
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())
        self.register_buffer("weight_fp32", w.clone() if exact_outliers else None)
        self.in_features, self.out_features = w.shape[1], w.shape[0]

    @classmethod
    def from_module(cls, m: nn.Module, exact_outliers: bool = False, kernel: str = "int_mm") -> "Int8Linear":
        """From ``nn.Linear`` or transformers' ``Conv1D`` (GPT-2), whose weight is (in, out)."""
        weight = m.weight.t() if isinstance(m, Conv1D) else m.weight
        return cls(weight, m.bias, exact_outliers, kernel)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, kernel={self.kernel}, "
                f"exact_outliers={self.weight_fp32 is not None}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2, amax, prepared = quantized_input(x, self._mm)
        y = self._mm(prepared)  # (N, out)
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


def linear_targets(model: nn.Module, keep: set[int] = frozenset()) -> list[tuple[nn.Module, str, nn.Module]]:
    """(parent, attribute, layer) for every Linear/Conv1D in ``model`` not in ``keep``."""
    return [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
            if isinstance(child, (nn.Linear, Conv1D)) and id(child) not in keep]


def layer_shapes(targets: list) -> dict[tuple[int, int], int]:
    """How many layers of each (in, out) shape: what the kernel timing check runs."""
    shapes: dict[tuple[int, int], int] = {}
    for _, _, child in targets:
        shapes[_in_out(child)] = shapes.get(_in_out(child), 0) + 1
    return shapes


def kernel_for(targets: list):
    """The integer kernel (``int8_kernels.KernelChoice``) for these layers on this machine."""
    return choose_kernel(layer_shapes(targets))


def quantize_int8(model: nn.Module, keep: set[int] = frozenset(), kernel: str = "int_mm") -> int:
    """Swap every Linear/Conv1D in ``model`` (except modules whose id is in ``keep``) for an
    ``Int8Linear`` on ``kernel`` in place; MLP output projections keep exact outlier rows.
    Returns how many."""
    targets = linear_targets(model, keep)
    inner = _mlp_inner_width([c for _, _, c in targets])
    for parent, name, child in targets:
        i, o = _in_out(child)
        setattr(parent, name, Int8Linear.from_module(child, exact_outliers=(i == inner and i > o), kernel=kernel))
    return len(targets)


def int8_prefix_copy(model: nn.Module, kernel: str) -> nn.Module:
    """A copy of a frozen-prefix network whose blocks below the split point run in int8:
    what computes the training split's cached states with ``--feature-precision int8``.
    The original keeps its fp32 weights (they are trained, saved and evaluated)."""
    import copy

    shadow = copy.deepcopy(model)
    frozen = list(shadow.backbone.layers)[:shadow.split]
    keep = {id(m) for m in shadow.modules()} - {id(m) for block in frozen for m in block.modules()}
    quantize_int8(shadow, keep=keep, kernel=kernel)
    return shadow.eval()
