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

Per-token scales still leave a token's ordinary channels at the mercy of its few outlier
*channels*: a handful of input columns per layer (the same ones in every text: what the
final norm's weights and massive activations put there) are ~10-100x the rest and set
every token's scale. Those ``EXACT_COLUMNS`` columns, found by running the fp32 model on a
few calibration texts (``outlier_columns``), are computed in fp32 beside the int8 matmul
(LLM.int8()'s decomposition, Dettmers et al., 2022, with fixed columns so that a text's
result never depends on its batch). On SMS spam this halved the log-probability error
(mean 0.64 -> 0.25 nats) and cut label flips 4 -> 0 on one model, 6 -> 4 on another; the
estimator's fp32 second look at near-ties (``LMEstimator.quantize``) takes the rest.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D  # GPT-2's linear layer, weight (in, out)

from .int8_fusions import fuse_elementwise
from .int8_kernels import BY_NAME, choose_kernel

# A row this many times the batch's median abs-max is a massive-activation token.
OUTLIER_RATIO = 16.0
# Input columns per layer computed in fp32 (at most 1/16 of them); 4-16 measured alike.
EXACT_COLUMNS = 8


_MEMO = "_lmclassify_int8_input"  # the attribute a quantized input carries its quantization in


def _version(x: torch.Tensor) -> int:
    # inference tensors keep no version counter (reading it raises: ~60 us per layer)
    return -1 if x.is_inference() else x._version


def quantized_input(x: torch.Tensor, kernel, columns: Optional[torch.Tensor] = None,
                    key: tuple = ()) -> tuple[torch.Tensor, torch.Tensor, tuple, Optional[torch.Tensor]]:
    """(x as float rows (N, in), per-row abs-max (N, 1), ``kernel.quantize`` of them, the
    ``columns`` the layer computes in fp32 (N, k) or None). Those columns (named by ``key``)
    are left out of the abs-max: they would set every token's scale.

    Layers that read the very same tensor (q/k/v; gate/up) quantize it once: 7
    quantizations per Llama block become 4, and quantizing was ~a quarter of SmolLM2's
    int8 time (profiled). The result rides on the tensor itself, so it lives exactly as
    long as the tensor; its version counter (where autograd keeps one) catches an
    in-place change."""
    x2 = x.reshape(-1, x.shape[-1]).float()  # a view of x: never stored on x (a cycle through C++)
    memo = getattr(x, _MEMO, None)
    if memo is not None and memo[0] == (kernel.name, key) and memo[1] == _version(x):
        return x2, *memo[2:]
    amax, prepared, exact = kernel.quantize(x2, columns)
    setattr(x, _MEMO, ((kernel.name, key), _version(x), amax, prepared, exact))
    return x2, amax, prepared, exact


class Int8Linear(nn.Module):
    """``y = x W^T + b`` with W int8 per output row and x int8 per token, on the integer
    kernel this CPU runs fastest (``models/int8_kernels.py``).

    ``columns``: input columns computed in fp32 (``outlier_columns``); left out of the
    int8 weights too, which tightens their row scales. ``exact_outliers`` keeps an fp32
    copy of W for the rare massive-activation rows."""

    def __init__(self, weight: torch.Tensor, bias: Optional[torch.Tensor], exact_outliers: bool = False,
                 kernel: str = "int_mm", columns: Optional[torch.Tensor] = None):
        super().__init__()
        w = weight.detach().float()  # (out, in)
        self.kernel = kernel
        self.register_buffer("weight_fp32", w.clone() if exact_outliers else None)
        has_columns = columns is not None and len(columns) > 0
        self.register_buffer("columns", columns.long().sort().values if has_columns else None)
        self._key = tuple(self.columns.tolist()) if has_columns else ()
        # zero weights on the exact columns: the torch passes leave those inputs unzeroed
        self._mm = BY_NAME[kernel](w.index_fill(1, self.columns, 0.0) if has_columns else w)
        # (k, out), divided by the scale the kernel's output still awaits, so that the exact
        # columns join before it and one pass applies it and the bias
        wc = w[:, self.columns].t() if has_columns else None
        if wc is not None and self._mm.out_scale is not None:
            wc = wc / self._mm.out_scale
        self.register_buffer("weight_columns", None if wc is None else wc.contiguous())
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())
        self.in_features, self.out_features = w.shape[1], w.shape[0]

    @classmethod
    def from_module(cls, m: nn.Module, exact_outliers: bool = False, kernel: str = "int_mm",
                    columns: Optional[torch.Tensor] = None) -> "Int8Linear":
        """From ``nn.Linear`` or transformers' ``Conv1D`` (GPT-2), whose weight is (in, out)."""
        weight = m.weight.t() if isinstance(m, Conv1D) else m.weight
        return cls(weight, m.bias, exact_outliers, kernel, columns)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, kernel={self.kernel}, "
                f"exact_columns={len(self._key)}, exact_outliers={self.weight_fp32 is not None}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2, amax, prepared, exact_in = quantized_input(x, self._mm, self.columns, self._key)
        y = self._mm.run(prepared, exact_in, self.weight_columns, self.bias)
        if self.weight_fp32 is not None and x2.shape[0] > 1:
            rows = (amax.squeeze(1) > OUTLIER_RATIO * amax.median()).nonzero().squeeze(1)
            if rows.numel():
                exact = x2[rows] @ self.weight_fp32.t()
                y[rows] = exact if self.bias is None else exact + self.bias
        return y.reshape(*shape[:-1], self.out_features).to(x.dtype)


def outlier_columns(layers: list[nn.Module], run: Callable[[], object],
                    k: int = EXACT_COLUMNS) -> dict[int, torch.Tensor]:
    """id(layer) -> the input columns of largest magnitude it saw while ``run()`` ran the
    fp32 model (calibration texts): ``k``, at most 1/16 of its inputs. A layer ``run``
    never reached gets none. (Only layers whose largest column is 8x the median: 11 of
    MiniLM's 37 layers, ~5 % faster, but int8's logit error 1.7x and label flips 8 -> 11 on
    SST-2: not kept.)"""
    seen: dict[int, torch.Tensor] = {}

    def record(mod, args):
        x = args[0].detach()
        m = x.reshape(-1, x.shape[-1]).abs().amax(0).float()
        seen[id(mod)] = m if id(mod) not in seen else torch.maximum(seen[id(mod)], m)

    handles = [layer.register_forward_pre_hook(record) for layer in layers]
    try:
        with torch.inference_mode():
            run()
    finally:
        for h in handles:
            h.remove()
    return {i: m.topk(min(k, len(m) // 16)).indices.clone() for i, m in seen.items()}


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


def quantize_int8(model: nn.Module, keep: set[int] = frozenset(), kernel: str = "int_mm",
                  columns: Optional[dict[int, torch.Tensor]] = None) -> int:
    """Swap every Linear/Conv1D in ``model`` (except modules whose id is in ``keep``) for an
    ``Int8Linear`` on ``kernel`` in place; MLP output projections keep exact outlier rows,
    and each layer computes its ``columns[id(layer)]`` (``outlier_columns``) in fp32; the
    RMSNorms and gated MLPs around them run their elementwise work in C where it is built
    (``int8_fusions.py``). Returns how many layers."""
    targets = linear_targets(model, keep)
    inner = _mlp_inner_width([c for _, _, c in targets])
    columns = columns or {}
    quantized = set()
    for parent, name, child in targets:
        i, o = _in_out(child)
        layer = Int8Linear.from_module(child, exact_outliers=(i == inner and i > o), kernel=kernel,
                                       columns=columns.get(id(child)))
        setattr(parent, name, layer)
        quantized.add(id(layer))
    fuse_elementwise(model, quantized, skip=keep)
    return len(targets)


def int8_prefix_copy(model: nn.Module, kernel: str) -> nn.Module:
    """A copy of a frozen-prefix network whose blocks below the split point run in int8:
    what computes the training split's cached states with ``--feature-precision int8``.
    No exact columns: training on those states matched the fp32 cache's accuracy without
    them (bench/results/feature_precision.md), and they would cost ~12 % of the cache's time.
    The original keeps its fp32 weights (they are trained, saved and evaluated); the copy
    shares every tensor it does not quantize."""
    from .frozen_prefix import sharing_copy

    shadow = sharing_copy(model)
    frozen = shadow.frozen_blocks()
    keep = {id(m) for m in shadow.modules()} - {id(m) for block in frozen for m in block.modules()}
    quantize_int8(shadow, keep=keep, kernel=kernel)
    return shadow.eval()
