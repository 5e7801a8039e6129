"""bf16 inference on CPUs that multiply bf16 natively (AMX, AVX512-BF16): every linear
layer but the head keeps its weights in bf16 and runs under CPU autocast, so matmuls take
bf16 inputs and accumulate in fp32, while embeddings, norms, softmax and the residual
stream stay fp32 (autocast adds a layer's bf16 output to an fp32 residual in fp32).

Why beside int8: on a Xeon with AMX, bf16 matmuls ran ~8x fp32 and as fast as
``torch._int_mm``, without int8's per-token scaling passes, so bf16 was the faster of the
two there and ~4x closer to fp32 (bench/results/int8-intel-amx.md). On a CPU without
native bf16 it is far slower than fp32: ``choose_bf16`` times it first.

The training cache's copy (``bf16_prefix_copy``) goes further: bf16 throughout, no autocast.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from ..machine import machine_info
from .int8 import layer_shapes, linear_targets
from .kernel_choice import KernelChoice, choose

ENV = "LMCLASSIFY_BF16"
FLAGS = ("amx_bf16", "avx512_bf16")  # a CPU without one of these emulates bf16: never faster


class Bf16:
    """bf16 weights and activations, fp32 accumulation, as a candidate of the timing check
    (``models/kernel_choice.py``) against fp32. Fast only where the CPU multiplies bf16
    natively (AMX: ~8x fp32 on a Xeon), far slower elsewhere."""

    name = "bf16"

    def __init__(self, w: torch.Tensor):
        self.w = w.to(torch.bfloat16)

    def layer(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(x.to(torch.bfloat16), self.w).float()

    @staticmethod
    def available() -> bool:
        return True


def choose_bf16(shapes: dict[tuple[int, int], int]) -> KernelChoice:
    """``bf16`` where this CPU multiplies bf16 faster than fp32 by ``kernel_choice.MIN_GAIN``
    on layers of these shapes, else None (stay fp32): forced by ``$LMCLASSIFY_BF16`` (auto,
    bf16, fp32), else cached, else timed; a CPU without native bf16 is not even timed."""
    info = machine_info()
    if os.environ.get(ENV, "auto").strip().lower() in ("", "auto") and not any(f in info["flags"] for f in FLAGS):
        return KernelChoice(None, f"no {' or '.join(FLAGS)} on this CPU", cpu=info["summary"])
    return choose(shapes, {Bf16.name: Bf16}, ENV, "bf16 | ", lambda flags: Bf16.name)


def bf16_linears(model: nn.Module, keep: set[int] = frozenset()) -> int:
    """Cast the weights of every Linear/Conv1D in ``model`` (except modules whose id is in
    ``keep``) to bf16 in place; they must then run under ``torch.autocast("cpu",
    dtype=torch.bfloat16)``. Returns how many."""
    targets = linear_targets(model, keep)
    for _, _, layer in targets:
        layer.weight.data = layer.weight.data.to(torch.bfloat16)
    return len(targets)


def bf16_for(targets: list) -> KernelChoice:
    """Whether these layers (``linear_targets``) run faster in bf16 on this machine
    (``kernel`` "bf16") or stay fp32 (None): the bf16 twin of ``int8.kernel_for``."""
    return choose_bf16(layer_shapes(targets))


def is_bf16(model: nn.Module) -> bool:
    return any(p.dtype == torch.bfloat16 for p in model.parameters())


def bf16_prefix_copy(model: nn.Module) -> nn.Module:
    """A copy of a frozen-prefix network whose embeddings and blocks below the split point
    are bf16 throughout (weights, norms, the residual stream), as a bf16 model runs on a
    GPU: what computes the training split's cache with ``--feature-precision bf16``.
    The trained blocks, final norm and head stay fp32 and shared with ``model``.

    Why not autocast over fp32 weights: it casts frozen weights again on every call (it
    keeps casts only of weights that require grad) and the inputs of q/k/v (gate/up) once
    per layer, and runs norms and the residual stream in fp32. On a Xeon with AMX, SmolLM2's
    SMS spam cache ran ~1.2x faster this way (1.16x against autocast over bf16 weights),
    relative state error 1.5 % vs 0.7 %; test accuracy stayed within 0.3 points of fp32's
    (bench/results/feature_precision-intel-amx.md)."""
    from .frozen_prefix import sharing_copy

    trained = {id(p) for m in model.trained_backbone() for p in m.parameters()}
    replace = {id(p): nn.Parameter(p.detach().to(torch.bfloat16), requires_grad=False)
               for p in model.backbone.base.parameters() if id(p) not in trained and p.is_floating_point()}
    return sharing_copy(model, replace).eval()
