"""bf16 inference on CPUs that multiply bf16 natively (AMX, AVX512-BF16): every linear
layer but the head keeps its weights in bf16 and runs under CPU autocast, so matmuls take
bf16 inputs and accumulate in fp32, while embeddings, norms, softmax and the residual
stream stay fp32 (autocast adds a layer's bf16 output to an fp32 residual in fp32).

Why beside int8: on a Xeon with AMX, bf16 matmuls ran ~8x fp32 and as fast as
``torch._int_mm``, without int8's per-token scaling passes, so bf16 was the faster of the
two there and ~4x closer to fp32 (bench/results/int8-intel-amx.md). On a CPU without
native bf16 it is far slower than fp32: ``int8_kernels.choose_bf16`` times it first.
"""
from __future__ import annotations

import torch
from torch import nn

from .int8 import linear_targets


def bf16_linears(model: nn.Module, keep: set[int] = frozenset()) -> int:
    """Cast the weights of every Linear/Conv1D in ``model`` (except modules whose id is in
    ``keep``) to bf16 in place; they must then run under ``torch.autocast("cpu",
    dtype=torch.bfloat16)``. Returns how many."""
    targets = linear_targets(model, keep)
    for _, _, layer in targets:
        layer.weight.data = layer.weight.data.to(torch.bfloat16)
    return len(targets)


def is_bf16(model: nn.Module) -> bool:
    return any(p.dtype == torch.bfloat16 for p in model.parameters())
