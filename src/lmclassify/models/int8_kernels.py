"""The integer matmuls int8 inference can run on, and which one is fastest on this CPU.

``torch._int_mm`` is fast only where the CPU has VNNI/AMX; on an AVX2-only CPU it falls to
a slow path (0.8 GOP/s measured on an AMD EPYC, 29x slower than fp32). FBGEMM's dynamic
int8 linear (``torch.ops.quantized.linear_dynamic``) is fast on AVX2 and AVX-512 alike, but
it scales a whole batch of activations by one number, which massive-activation tokens ruin
(``models/int8.py``). Dividing each row by its own abs-max first makes every row span the
same range, so one scale per batch *is* a per-token scale: the row scales multiply back in
after the matmul (a linear map commutes with a per-row factor).

Which kernel wins is decided per machine: what the CPU reports, then a short timing of each
available kernel against fp32 on the model's own layer shapes, cached in the lmclassify
cache under the CPU, torch version, thread count and shapes. If no integer kernel beats
fp32 by ``MIN_GAIN``, the model stays fp32. ``LMCLASSIFY_INT8_KERNEL`` forces a choice
(int_mm, fbgemm, fp32; default auto).

``--quantize bf16`` asks the same question of bf16 (``choose_bf16``, ``$LMCLASSIFY_BF16``):
on a CPU with AMX, bf16 matmuls run ~8x fp32 and need no activation scaling at all.
"""
from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Optional

import torch

from ..errors import LmClassifyError
from ..machine import machine_info
from ..paths import cache_root

KERNELS = ("int_mm", "fbgemm")
ENV = "LMCLASSIFY_INT8_KERNEL"
BF16_ENV = "LMCLASSIFY_BF16"
# An integer kernel must beat fp32 on the layer matmuls by this much to be worth its
# rounding error: attention, norms and quantising activations do not shrink with it.
MIN_GAIN = 1.15
TIMING_ROWS = 256  # tokens per matmul in the timing check: a typical inference batch
CACHE_FILE = "int8_kernels.json"


def weight_scales(w: torch.Tensor, levels: int = 127) -> torch.Tensor:
    """Symmetric scale per output row of ``w`` (out, in), for integers in [-levels, levels]."""
    return w.abs().amax(1).clamp(min=1e-8) / levels


class IntMM:
    """int8 x int8 -> int32 with ``torch._int_mm``: activations int8 per token.

    A kernel is used in two steps: ``prepare`` the activations (what layers reading the
    same input can share: ``models/int8.py``), then ``kernel(prepared)`` per layer, which
    returns the output still to be multiplied by ``out_scale`` (per output column) once the
    layer has added what it computes in fp32 (its exact columns).

    Every pass writes into memory it already holds: on a VM a fresh multi-MB buffer costs
    more in page faults than the arithmetic done in it (a 360x1536 quantization: 1.8 ms
    with three fresh buffers, 0.16 ms with one, on the AMD EPYC)."""

    name = "int_mm"

    def __init__(self, w: torch.Tensor):
        scale = weight_scales(w)
        self.qweight = torch.round(w / scale[:, None]).to(torch.int8).t()  # (in, out): a view, no copy
        self.out_scale = scale

    @staticmethod
    def prepare(x2: torch.Tensor, amax: torch.Tensor, scratch: torch.Tensor,
                columns: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(int8 rows, their scales); ``scratch``: a float buffer like ``x2`` to write in.
        ``columns`` (inputs the layer computes in fp32) are left as they come: they exceed
        int8 and cast to arbitrary values, but the layer's int8 weights there are zero."""
        q = torch.mul(x2, 127.0 / amax, out=scratch)  # a multiply, not a divide: ~1.7x faster here
        return q.round_().to(torch.int8), amax / 127

    def __call__(self, prepared: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        q, scale = prepared
        acc = torch._int_mm(q, self.qweight)
        # int32 -> fp32 in place, then scaled: a mixed-dtype multiply would first copy ``acc``
        # to a fresh fp32 temporary (TensorIterator's type promotion on the CPU)
        y = acc.view(torch.float32)
        y.copy_(acc)
        return y.mul_(scale)

    @staticmethod
    def available() -> bool:
        return hasattr(torch, "_int_mm")


class Fbgemm:
    """FBGEMM's dynamic int8 linear on rows pre-divided by their abs-max (per-token scales).

    AVX2 multiplies u8 activations by s8 weights into 16-bit pair sums, which saturate at
    full range; torch's answer is 7-bit activations (``reduce_range``), which doubled the
    error here. Weights in [-63, 63] cannot saturate either (255 x 63 x 2 < 2^15) and cost
    less: per-channel weight scales already fit each row."""

    name = "fbgemm"
    out_scale = None  # FBGEMM applies the weight scales itself

    def __init__(self, w: torch.Tensor):
        scale = weight_scales(w, levels=63)
        with warnings.catch_warnings():  # quantized tensors are deprecated in favour of torchao
            warnings.simplefilter("ignore")
            qw = torch.quantize_per_channel(w.contiguous(), scale.double(), torch.zeros(len(scale), dtype=torch.long),
                                            0, torch.qint8)
            self.packed = torch.ops.quantized.linear_prepack(qw, None)

    @staticmethod
    def prepare(x2: torch.Tensor, amax: torch.Tensor, scratch: torch.Tensor,
                columns: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows scaled to abs-max 1, their abs-max); ``columns`` zero: FBGEMM scales the whole
        batch by its largest value, which they would set."""
        unit = torch.mul(x2, 1.0 / amax, out=scratch)
        return (unit if columns is None else unit.index_fill_(1, columns, 0.0)), amax

    def __call__(self, prepared: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        unit, amax = prepared
        return torch.ops.quantized.linear_dynamic(unit, self.packed, False).mul_(amax)

    @staticmethod
    def available() -> bool:
        try:
            return "fbgemm" in torch.backends.quantized.supported_engines and \
                hasattr(torch.ops.quantized, "linear_dynamic")
        except Exception:  # a torch build without quantized ops
            return False


BY_NAME: dict[str, type] = {k.name: k for k in (IntMM, Fbgemm)}


class Bf16:
    """bf16 weights and activations, fp32 accumulation: what ``--quantize bf16`` runs
    (``models/bf16.py``), timed here against fp32 like the integer kernels. Fast only
    where the CPU multiplies bf16 natively (AMX: ~8x fp32 on a Xeon), far slower elsewhere."""

    name = "bf16"
    out_scale = None

    def __init__(self, w: torch.Tensor):
        self.w = w.to(torch.bfloat16)

    @staticmethod
    def prepare(x2: torch.Tensor, amax: torch.Tensor, scratch: torch.Tensor,
                columns: Optional[torch.Tensor] = None) -> torch.Tensor:
        return x2.to(torch.bfloat16)

    def __call__(self, prepared: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(prepared, self.w).float()

    @staticmethod
    def available() -> bool:
        return True


BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # a CPU without one of these emulates bf16: never faster


@dataclass
class KernelChoice:
    """The kernel int8 layers use on this machine (None: stay fp32), and why."""

    kernel: Optional[str]
    source: str  # "env", "cache" or "timed"
    ms: dict = field(default_factory=dict)  # per kernel and fp32: matmul time of the model's layers
    cpu: str = ""

    def describe(self) -> str:
        times = ", ".join(f"{k} {v:.2f} ms" for k, v in self.ms.items())
        what = (("bf16" if self.kernel == Bf16.name else f"int8 kernel {self.kernel}") if self.kernel
                else "fp32 (nothing beats it)")
        return f"{what} on {self.cpu}" + (f" [{times}]" if times else "") + f" ({self.source})"


def time_kernels(shapes: dict[tuple[int, int], int], rows: int = TIMING_ROWS, reps: int = 5,
                 rounds: int = 3, kernels: Optional[dict[str, type]] = None) -> dict[str, float]:
    """Milliseconds for one forward of every layer shape (weighted by how many layers have
    it) in fp32 and in each available integer kernel, on random data of the same size.
    Each candidate runs a few calls in a row (as a model does: switching libraries between
    calls costs their thread pools a wake-up each time, 10-50x on small matmuls), and the
    candidates take turns over several rounds keeping their best, so a burst of load on a
    shared machine lands on all of them instead of deciding the race. ``kernels``: the
    candidates (default: the integer ones)."""
    kernels = BY_NAME if kernels is None else kernels
    gen = torch.Generator().manual_seed(0)
    names = ["fp32", *(k for k, cls in kernels.items() if cls.available())]
    totals = dict.fromkeys(names, 0.0)
    for (n_in, n_out), count in shapes.items():
        w = torch.randn(n_out, n_in, generator=gen)
        x = torch.randn(rows, n_in, generator=gen)
        runs = {"fp32": lambda: torch.nn.functional.linear(x, w)}
        for name in names[1:]:
            try:
                kernel = kernels[name](w)
                run = (lambda k: lambda: _timed_call(k, x))(kernel)
                run()  # warm-up; may raise
                runs[name] = run
            except Exception:  # a kernel this build or CPU cannot run is simply not a candidate
                totals.pop(name, None)
                continue
        best = dict.fromkeys(runs, float("inf"))
        for _ in range(rounds):
            for name, fn in runs.items():
                for _ in range(2):  # back on this kernel's own code path and thread pool
                    fn()
                for _ in range(reps):
                    t0 = time.perf_counter()
                    fn()
                    best[name] = min(best[name], time.perf_counter() - t0)
        for name in best:
            if name in totals:
                totals[name] += count * best[name] * 1e3
    return totals


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


def _timed_call(kernel, x: torch.Tensor) -> torch.Tensor:
    """One layer's work on ``kernel`` as ``Int8Linear`` does it, exact columns aside."""
    mags, amax = row_scales(x)
    return finish(kernel, kernel(kernel.prepare(x, amax, mags)))


def _machine_is_busy() -> bool:
    """More runnable work than cores: timings now say more about the neighbours than the
    kernels, so a choice made now is used but not cached."""
    try:
        return os.getloadavg()[0] > (os.cpu_count() or 1)
    except OSError:
        return False


def _read_cache() -> dict:
    try:
        return json.loads((cache_root() / CACHE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(cache: dict) -> None:
    path = cache_root() / CACHE_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=1) + "\n")
        os.replace(tmp, path)
    except OSError:  # a read-only cache only costs the timing next time
        pass


def choose_kernel(shapes: dict[tuple[int, int], int]) -> KernelChoice:
    """The fastest correct integer kernel for layers of these (in, out) shapes on this CPU,
    or None when fp32 is as fast: forced by ``$LMCLASSIFY_INT8_KERNEL``, else cached, else timed."""
    return _choose(shapes, BY_NAME, ENV, "", preferred_kernel)


def choose_bf16(shapes: dict[tuple[int, int], int]) -> KernelChoice:
    """``bf16`` where this CPU multiplies bf16 faster than fp32 by ``MIN_GAIN`` on layers of
    these shapes, else None (stay fp32): forced by ``$LMCLASSIFY_BF16`` (auto, bf16, fp32),
    else cached, else timed; a CPU without native bf16 is not even timed."""
    info = machine_info()
    if os.environ.get(BF16_ENV, "auto").strip().lower() in ("", "auto") and \
            not any(f in info["flags"] for f in BF16_FLAGS):
        return KernelChoice(None, f"no {' or '.join(BF16_FLAGS)} on this CPU", cpu=info["summary"])
    return _choose(shapes, {Bf16.name: Bf16}, BF16_ENV, "bf16 | ", lambda flags: Bf16.name)


def _choose(shapes: dict[tuple[int, int], int], kernels: dict[str, type], env: str, family: str,
            by_flags) -> KernelChoice:
    """The fastest of ``kernels`` against fp32, or None: forced by ``$env``, else from the
    per-machine cache (keyed by ``family``, the CPU and the shapes), else timed (by the
    CPU's flags, ``by_flags``, when the machine is too busy to time)."""
    info = machine_info()
    forced = os.environ.get(env, "auto").strip().lower() or "auto"
    if forced not in ("auto", "fp32", *kernels):
        raise LmClassifyError(f"${env} must be auto, fp32, {' or '.join(kernels)}, not {forced!r}")
    if forced == "fp32":
        return KernelChoice(None, "env", cpu=info["summary"])
    if forced != "auto":
        if not kernels[forced].available():
            raise LmClassifyError(f"${env}={forced}: torch {torch.__version__} cannot run that kernel here")
        return KernelChoice(forced, "env", cpu=info["summary"])
    key = f"{family}{info['summary']} | " + ",".join(f"{i}x{o}*{n}" for (i, o), n in sorted(shapes.items()))
    cache = _read_cache()
    if key in cache:
        c = cache[key]
        if c.get("kernel") is None or (c["kernel"] in kernels and kernels[c["kernel"]].available()):
            return KernelChoice(c.get("kernel"), "cache", c.get("ms", {}), info["summary"])
    if _machine_is_busy():
        # Timings on an oversubscribed CPU measure the neighbours (thread pools descheduled
        # mid-matmul): go by what the CPU reports, and time it another day.
        return KernelChoice(by_flags(info["flags"]), "CPU flags; machine busy, not timed", cpu=info["summary"])
    ms = time_kernels(shapes, kernels=kernels)
    ints = {k: v for k, v in ms.items() if k != "fp32"}
    best = min(ints, key=ints.get) if ints else None
    kernel = best if best is not None and ms["fp32"] >= MIN_GAIN * ints[best] else None
    cache[key] = {"kernel": kernel, "ms": {k: round(v, 3) for k, v in ms.items()}}
    _write_cache(cache)
    return KernelChoice(kernel, "timed", cache[key]["ms"], info["summary"])


def preferred_kernel(flags: list[str]) -> Optional[str]:
    """The kernel a CPU's flags promise: ``_int_mm`` with VNNI/AMX (its fast path), FBGEMM
    on AVX2 (where ``_int_mm`` falls to a slow path), whichever exists elsewhere."""
    if IntMM.available() and any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8")):
        return "int_mm"
    if Fbgemm.available():
        return "fbgemm"
    return "int_mm" if IntMM.available() else None
