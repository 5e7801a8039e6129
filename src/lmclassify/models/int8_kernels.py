"""The integer matmuls int8 inference can run on, and which one is fastest on this CPU.

``torch._int_mm`` is fast only where the CPU has VNNI/AMX; on an AVX2-only CPU it falls to
a slow path (0.8 GOP/s measured on an AMD EPYC, 29x slower than fp32). FBGEMM's dynamic
int8 linear (``torch.ops.quantized.linear_dynamic``) is fast on AVX2 and AVX-512 alike, but
it scales a whole batch of activations by one number, which massive-activation tokens ruin
(``models/int8.py``). Dividing each row by its own abs-max first makes every row span the
same range, so one scale per batch *is* a per-token scale: the row scales multiply back in
after the matmul (a linear map commutes with a per-row factor). On AVX2 our own kernel
(``Avx2Gemm``, 7-bit operands) is faster than both where the C passes are built.

Which kernel wins is decided per machine (``models/kernel_choice.py``): a short timing of
each available kernel against fp32 on the model's own layer shapes, cached per machine, or
what the CPU reports when it is too busy to time. If no integer kernel beats fp32 by
``kernel_choice.MIN_GAIN``, the model stays fp32. ``LMCLASSIFY_INT8_KERNEL`` forces a
choice (int_mm, fbgemm, avx2, fp32; default auto).
"""
from __future__ import annotations

import warnings
from typing import Optional

import torch

from . import int8_passes
from .kernel_choice import KernelChoice, choose

ENV = "LMCLASSIFY_INT8_KERNEL"


def weight_scales(w: torch.Tensor, levels: int = 127) -> torch.Tensor:
    """Symmetric scale per output row of ``w`` (out, in), for integers in [-levels, levels]."""
    return w.abs().amax(1).clamp(min=1e-8) / levels


class _IntKernel:
    """What the integer kernels share: one layer's work in two steps. ``quantize`` the
    input (what layers reading the same input can share: ``models/int8.py``), then ``run``
    the matmul and turn its output into the layer's: row scales, the exact columns, weight
    scales and bias. The passes around the matmul run in C where it could be built for
    this machine (``models/int8_passes.py``: the ``fused`` passes), else as torch ops."""

    name = ""
    int8_rows = True  # what ``quantize`` hands the matmul: int8 rows, or fp32 rows of abs-max 1
    levels, offset = 127, 0  # int8 rows: round(x * levels / abs-max) + offset
    out_scale: Optional[torch.Tensor] = None  # per output column, applied after the exact columns

    def __init__(self):
        self.fused = int8_passes.passes()

    def quantize(self, x2: torch.Tensor, columns: Optional[torch.Tensor] = None
                 ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor], Optional[torch.Tensor]]:
        """(x2's per-row abs-max (N, 1) without ``columns``, what ``run`` takes, x2's
        ``columns`` (N, k) or None: the inputs the layer computes in fp32)."""
        if self.fused is not None:
            rows, amax, exact = self.fused.quantize(x2, columns, int8=self.int8_rows, levels=self.levels,
                                                    offset=self.offset)
        else:
            mags, amax = row_scales(x2, columns)
            exact = None if columns is None else x2.index_select(1, columns)
            rows = self.prepare(x2, amax, mags, columns)
        return amax, self._prepared(rows, amax), exact

    def run(self, prepared: tuple[torch.Tensor, torch.Tensor], exact: Optional[torch.Tensor] = None,
            weight_columns: Optional[torch.Tensor] = None, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The layer's fp32 output (N, out); ``weight_columns`` (k, out) are the exact
        columns' weights divided by ``out_scale``, so that one pass applies it to both."""
        out, row_scale = self.matmul(prepared)
        if self.fused is not None:
            return self.fused.finish(out, row_scale, self.out_scale, bias, exact, weight_columns)
        if out.dtype == torch.int32:
            # int32 -> fp32 in place: a mixed-dtype multiply would first copy ``out`` to a
            # fresh fp32 temporary (TensorIterator's type promotion on the CPU)
            y = out.view(torch.float32)
            out = y.copy_(out)
        out.mul_(row_scale)
        if exact is not None:
            out.addmm_(exact, weight_columns)
        return finish(self, out, bias)

    def _prepared(self, rows: torch.Tensor, amax: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What ``matmul`` takes: the int8 rows and their scales (abs-max / ``levels``)."""
        return rows, amax / self.levels

    def layer(self, x: torch.Tensor) -> torch.Tensor:
        """One layer's work, as ``Int8Linear`` does it (exact columns aside): what the timing check runs."""
        return self.run(self.quantize(x)[1])


class IntMM(_IntKernel):
    """int8 x int8 -> int32 with ``torch._int_mm``: activations int8 per token.

    Where the passes run as torch ops, every pass writes into memory it already holds: on
    a VM a fresh multi-MB buffer costs more in page faults than the arithmetic done in it
    (a 360x1536 quantization: 1.8 ms with three fresh buffers, 0.16 ms with one, on the
    AMD EPYC)."""

    name = "int_mm"

    def __init__(self, w: torch.Tensor):
        super().__init__()
        q, self.out_scale = int8_weights(w)
        self.qweight = q.t()  # (in, out): a view, no copy

    @staticmethod
    def prepare(x2: torch.Tensor, amax: torch.Tensor, scratch: torch.Tensor,
                columns: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The int8 rows, as torch ops; ``scratch``: a float buffer like ``x2`` to write in.
        ``columns`` (inputs the layer computes in fp32) are left as they come: they exceed
        int8 and cast to arbitrary values, but the layer's int8 weights there are zero."""
        q = torch.mul(x2, 127.0 / amax, out=scratch)  # a multiply, not a divide: ~1.7x faster here
        return q.round_().to(torch.int8)

    def matmul(self, prepared: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(the int32 product, the row scales it awaits)."""
        q, scale = prepared
        return torch._int_mm(q, self.qweight), scale

    @staticmethod
    def available() -> bool:
        return hasattr(torch, "_int_mm")


class Fbgemm(_IntKernel):
    """FBGEMM's dynamic int8 linear on rows pre-divided by their abs-max (per-token scales).

    AVX2 multiplies u8 activations by s8 weights into 16-bit pair sums, which saturate at
    full range; torch's answer is 7-bit activations (``reduce_range``), which doubled the
    error here. Weights in [-63, 63] cannot saturate either (255 x 63 x 2 < 2^15) and cost
    less: per-channel weight scales already fit each row."""

    name = "fbgemm"
    int8_rows = False  # FBGEMM quantizes them itself
    out_scale = None  # FBGEMM applies the weight scales itself

    def __init__(self, w: torch.Tensor):
        super().__init__()
        scale = weight_scales(w, levels=63)
        with warnings.catch_warnings():  # quantized tensors are deprecated in favour of torchao
            warnings.simplefilter("ignore")
            qw = torch.quantize_per_channel(w.contiguous(), scale.double(), torch.zeros(len(scale), dtype=torch.long),
                                            0, torch.qint8)
            self.packed = torch.ops.quantized.linear_prepack(qw, None)

    @staticmethod
    def prepare(x2: torch.Tensor, amax: torch.Tensor, scratch: torch.Tensor,
                columns: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The rows scaled to abs-max 1, as torch ops; ``columns`` zero: FBGEMM scales the
        whole batch by its largest value, which they would set."""
        unit = torch.mul(x2, 1.0 / amax, out=scratch)
        return unit if columns is None else unit.index_fill_(1, columns, 0.0)

    @staticmethod
    def _prepared(unit: torch.Tensor, amax: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What ``matmul`` takes: the unit rows and their abs-max."""
        return unit, amax

    def matmul(self, prepared: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(the fp32 product of the unit rows, their abs-max it awaits)."""
        unit, amax = prepared
        return torch.ops.quantized.linear_dynamic(unit, self.packed, False), amax

    @staticmethod
    def available() -> bool:
        try:
            return "fbgemm" in torch.backends.quantized.supported_engines and \
                hasattr(torch.ops.quantized, "linear_dynamic")
        except Exception:  # a torch build without quantized ops
            return False


class Avx2Gemm(_IntKernel):
    """The library's own int8 matmul for AVX2 (``int8_gemm.c``): where the CPU lacks VNNI,
    ``torch._int_mm`` falls to a slow path and FBGEMM reached 1.2-1.5x fp32 on whole
    models. AVX2 multiplies bytes into 16-bit pair sums; with 7-bit operands two of them add
    in 16 bits before the widening step, which lifts the matmul to 2.1-2.6x fp32 (FBGEMM's
    1.4-1.8x; emulated AVX2, bench/results/int8_gemm.md). The price is 63 levels a side
    instead of 127 (FBGEMM's 63 for weights): labels still agreed 100 % with fp32 on SST-2,
    TREC and SMS spam (int8-avx2-kernel.md).
    Exists where the C passes were built for a CPU with AVX2."""

    name = "avx2"
    levels, offset = int8_passes.GEMM_LEVELS, int8_passes.GEMM_OFFSET  # activations q + 64: unsigned bytes

    def __init__(self, w: torch.Tensor):
        super().__init__()
        if self.fused is None or not self.fused.has_gemm:
            raise RuntimeError("the avx2 int8 kernel needs the C passes built for an AVX2 CPU")
        q, self.out_scale = int8_weights(w, levels=self.levels)
        self.packed, self.n_out = self.fused.gemm_pack(q), w.shape[0]

    def run(self, prepared: tuple[torch.Tensor, torch.Tensor], exact: Optional[torch.Tensor] = None,
            weight_columns: Optional[torch.Tensor] = None, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The matmul and the passes after it in one: each tile finishes its outputs in registers."""
        q, row_scale = prepared
        return self.fused.gemm(q, self.packed, self.n_out, row_scale, self.out_scale, bias, exact, weight_columns)

    @staticmethod
    def available() -> bool:
        fused = int8_passes.passes()
        return fused is not None and fused.has_gemm


BY_NAME: dict[str, type] = {k.name: k for k in (IntMM, Fbgemm, Avx2Gemm)}


def int8_weights(w: torch.Tensor, levels: int = 127) -> tuple[torch.Tensor, torch.Tensor]:
    """(w (out, in) as integers in [-levels, levels], int8; its per-row scales)."""
    scale = weight_scales(w, levels)
    return torch.round(w / scale[:, None]).to(torch.int8), scale


def row_scales(x2: torch.Tensor, columns: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(|x2| with ``columns`` zeroed, its per-row abs-max (N, 1)): one scale per token, set
    without the columns its layer computes in fp32. The first is the one (N, in) float
    buffer quantizing allocates: ``prepare`` writes into it."""
    mags = x2.abs()
    if columns is not None:
        mags.index_fill_(1, columns, 0.0)
    return mags, mags.amax(1, keepdim=True).clamp_(min=1e-8)


def finish(kernel, y: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``kernel(prepared)``'s output with the weight scale it still awaits (``out_scale``)
    and ``bias`` applied in place: one pass where both are due."""
    scale = kernel.out_scale
    if scale is not None:
        return y.mul_(scale) if bias is None else torch.addcmul(bias, y, scale, out=y)
    return y if bias is None else y.add_(bias)


def choose_kernel(shapes: dict[tuple[int, int], int]) -> KernelChoice:
    """The fastest correct integer kernel for layers of these (in, out) shapes on this CPU,
    or None when fp32 is as fast: forced by ``$LMCLASSIFY_INT8_KERNEL``, else cached, else
    timed. The passes around the matmul (C or torch) are part of what is timed, and of the
    cache key: they move the race between the kernels and fp32."""
    how = int8_passes.status()
    choice = choose(shapes, BY_NAME, ENV, f"{how} | ", preferred_kernel)
    choice.how = how
    return choice


def preferred_kernel(flags: list[str]) -> Optional[str]:
    """The kernel a CPU's flags promise: ``_int_mm`` with AVX-512 VNNI/AMX (torch's gate
    for its fast path: not AVX-VNNI alone), on AVX2 our own kernel, else FBGEMM (where
    ``_int_mm`` falls to a slow path), whichever exists elsewhere."""
    if IntMM.available() and any(f in flags for f in ("avx512_vnni", "amx_int8")):
        return "int_mm"
    if "avx2" in flags and Avx2Gemm.available():
        return "avx2"
    if Fbgemm.available():
        return "fbgemm"
    return "int_mm" if IntMM.available() else None
