"""The elementwise work between an int8 Llama block's matmuls, in one C pass each.

Once int8 has taken the matmuls of a SmolLM2 block from ~85 % of its time to about half,
the ops around them weigh: RMSNorm is ~5 torch ops and the gated MLP's ``silu(gate) * up``
two, each reading and writing (and, on a VM, page-faulting in) a whole activation tensor.
On the SMS spam recipe they were ~15 % of the int8 feature cache's time (profiled). The C
passes (``int8_passes.rmsnorm`` / ``silu_mul``) do each in one read.

Modules are recognised by their parts and **checked against their own forward** on a
random input before they are swapped, so a look-alike with other arithmetic (Gemma's
``1 + weight`` norm, another activation) is left alone. Only modules inside what int8
quantized are touched (a feature cache's trainable top block keeps torch's ops and its
autograd). The fused modules take over the originals' weights and layers under the same
names; what a C pass is not for (another dtype, a pass that needs gradients) runs in torch.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from . import int8_passes


def _plain(x: torch.Tensor, *params: torch.Tensor) -> bool:
    """Whether the C pass may run: fp32 on the CPU, no gradient wanted."""
    grad = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params))
    return x.dtype == torch.float32 and x.device.type == "cpu" and not grad


class FusedRMSNorm(nn.Module):
    """A Llama-family RMSNorm (``weight * x / sqrt(mean(x^2) + eps)``) in one C pass. It
    takes over the norm's own weight (same names, same tensor); what the pass is not for
    runs Llama's formula in torch, which ``fuse_elementwise`` checked the norm computes."""

    def __init__(self, norm: nn.Module, passes: int8_passes.Passes):
        super().__init__()
        self.weight, self.variance_epsilon, self._passes = norm.weight, float(norm.variance_epsilon), passes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _plain(x, self.weight):
            return self._passes.rmsnorm(x, self.weight, self.variance_epsilon)  # made contiguous there
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * h.to(x.dtype)


class FusedGatedMLP(nn.Module):
    """``down(silu(gate(x)) * up(x))`` with the activation and product in one C pass over
    the gate's output (the int8 layers' own passes run around their matmuls). It takes
    over the MLP's layers, under their names."""

    def __init__(self, mlp: nn.Module, passes: int8_passes.Passes):
        super().__init__()
        self.gate_proj, self.up_proj, self.down_proj = mlp.gate_proj, mlp.up_proj, mlp.down_proj
        self.act_fn = mlp.act_fn
        self._passes = passes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_proj(x), self.up_proj(x)  # one input: the int8 layers quantize it once
        if _plain(gate) and gate.shape == up.shape and gate.is_contiguous() and up.dtype == torch.float32 \
                and up.is_contiguous():
            return self.down_proj(self._passes.silu_mul(gate, up))
        return self.down_proj(self.act_fn(gate) * up)


def _is_rmsnorm(m: nn.Module) -> bool:
    w = getattr(m, "weight", None)
    return type(m).__name__.endswith("RMSNorm") and hasattr(m, "variance_epsilon") and \
        isinstance(w, torch.Tensor) and w.dim() == 1


def _is_gated_mlp(m: nn.Module, quantized: set[int]) -> bool:
    parts = [getattr(m, p, None) for p in ("gate_proj", "up_proj", "down_proj")]
    return all(p is not None and id(p) in quantized for p in parts) and _is_silu(getattr(m, "act_fn", None))


def _is_silu(act) -> bool:
    """nn.SiLU, transformers' SiLUActivation, or anything else that computes it."""
    if not isinstance(act, nn.Module):
        return False
    probe = torch.linspace(-8, 8, 33)
    with torch.inference_mode():
        out = act(probe)
    return isinstance(out, torch.Tensor) and out.shape == probe.shape and \
        torch.allclose(out, nn.functional.silu(probe), rtol=1e-6, atol=1e-7)


def _agrees(original: nn.Module, fused: nn.Module, width: int) -> bool:
    """The swap's own check: both on one random input, within float rounding."""
    x = torch.randn(3, 5, width, generator=torch.Generator().manual_seed(0)) * 4
    with torch.inference_mode():
        want, got = original(x), fused(x)
    return want.shape == got.shape and torch.allclose(got, want, rtol=1e-4, atol=1e-5 * float(want.abs().max()))


def fuse_elementwise(model: nn.Module, quantized: set[int], skip: set[int] = frozenset()) -> int:
    """Swap, in place, the RMSNorms and gated MLPs of ``model`` whose matmuls int8 took
    (``quantized``: ids of its int8 layers; norms: those outside ``skip``) for their C
    versions, where this machine has the C passes. Returns how many."""
    passes: Optional[int8_passes.Passes] = int8_passes.passes()
    if passes is None:
        return 0
    swaps = []
    for parent in model.modules():
        for name, child in parent.named_children():
            if id(child) in skip:
                continue
            if _is_gated_mlp(child, quantized):
                fused: nn.Module = FusedGatedMLP(child, passes)
                width = child.gate_proj.in_features
            elif _is_rmsnorm(child):
                fused, width = FusedRMSNorm(child, passes), child.weight.numel()
            else:
                continue
            if _agrees(child, fused, width):
                swaps.append((parent, name, fused))
    for parent, name, fused in swaps:
        setattr(parent, name, fused)
    return len(swaps)
