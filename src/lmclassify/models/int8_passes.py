"""The passes around an int8 layer's integer matmul, fused in C (``int8_passes.c``).

Quantizing a layer's input per token takes ~6 torch ops over the whole (N, in) tensor
(|x|, zero the exact columns, row max, scale, round, cast), and turning the int32 result
into the layer's output ~4 over (N, out) (cast, row scales, exact columns, weight scales
and bias). Each op reads and writes the tensor in memory; on MiniLM's 384-wide layers they
took about as long as the integer matmul itself, which held `--quantize int8` near 1.9x
fp32 on SST-2. One C pass per row does the same arithmetic with the row in L1 cache: the
quantized rows are bit for bit torch's, the outputs within float rounding (~1e-7), and a
MiniLM layer runs 16-30 % faster (bench/results/int8.md). No library does this: torchao's
fused version needs ``torch.compile`` and was slower here eager.

Between the matmuls of a Llama-family block the same holds: RMSNorm is ~5 torch ops (each
writing a fresh tensor: on a VM, page faults cost more than the arithmetic) and the gated
MLP's ``silu(gate) * up`` two; ``rmsnorm`` and ``silu_mul`` are one pass each, ~15x and
~10x faster on SmolLM2's shapes (``models/int8_fusions.py`` puts them in int8 blocks).

Built once per machine with the system's C compiler (``$CC``, else ``cc``) at
``-O3 -march=native`` (then ``$CFLAGS``, which may override it) with OpenMP linked to
torch's own OpenMP runtime (one thread pool, torch's thread count), cached under the
lmclassify cache, loaded with ctypes, and checked against the torch passes before first
use. Where it cannot be built (no compiler, no OpenMP, a failed check) the torch passes run
instead: slower, never wrong.
``LMCLASSIFY_INT8_PASSES``: auto (default), c (an error where it cannot be built), torch.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Optional

import torch

from ..errors import LmClassifyError
from ..machine import machine_info
from ..paths import cache_root

ENV = "LMCLASSIFY_INT8_PASSES"
SOURCE = Path(__file__).with_name("int8_passes.c")
FLAGS = ("-O3", "-march=native", "-fPIC", "-fopenmp", "-std=gnu11")
BUILD_TIMEOUT_S = 120


class Passes:
    """The compiled passes, called on torch tensors (checked here: C trusts its pointers)."""

    def __init__(self, lib: ctypes.CDLL, compiler: str):
        p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
        lib.lmc_quantize.argtypes = [p, i64, i64, p, i64, p, p, p, p, i32]
        lib.lmc_quantize.restype = i32
        lib.lmc_finish.argtypes = [p, i32, i64, i64, p, p, p, p, i64, p, i32]
        lib.lmc_finish.restype = None
        lib.lmc_rmsnorm.argtypes = [p, i64, i64, p, ctypes.c_float, p, i32]
        lib.lmc_rmsnorm.restype = None
        lib.lmc_silu_mul.argtypes = [p, p, i64, i32]
        lib.lmc_silu_mul.restype = None
        self._lib, self.compiler = lib, compiler

    def __deepcopy__(self, memo: dict) -> "Passes":
        return self  # a loaded library: copies of a model share it

    def __reduce__(self):
        return passes, ()  # unpickled: this machine's own passes (or None: the torch passes)

    def quantize(self, x2: torch.Tensor, columns: Optional[torch.Tensor], int8: bool
                 ) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """(int8 rows scaled by 127 / abs-max, or fp32 rows divided by it; their abs-max
        (N, 1) over the columns not in ``columns``; x2's ``columns`` (N, k) or None)."""
        x2 = _f32(x2)
        n, k = x2.shape
        cols = None if columns is None or not len(columns) else columns
        if cols is not None and (cols.dtype != torch.int64 or not cols.is_contiguous()
                                 or not all(0 <= c < k for c in cols.tolist())):
            raise ValueError("exact columns must be int64 indices of the input's columns")
        out = torch.empty(n, k, dtype=torch.int8 if int8 else torch.float32)
        amax = torch.empty(n, 1)
        exact = None if cols is None else torch.empty(n, len(cols))
        rc = self._lib.lmc_quantize(x2.data_ptr(), n, k, _ptr(cols), 0 if cols is None else len(cols),
                                    out.data_ptr() if int8 else None, None if int8 else out.data_ptr(),
                                    amax.data_ptr(), _ptr(exact), torch.get_num_threads())
        if rc != 0:
            raise MemoryError("int8 passes: out of memory")
        return out, amax, exact

    def finish(self, y: torch.Tensor, row_scale: torch.Tensor, out_scale: Optional[torch.Tensor],
               bias: Optional[torch.Tensor], exact: Optional[torch.Tensor],
               weight_columns: Optional[torch.Tensor]) -> torch.Tensor:
        """``(y * row_scale + exact @ weight_columns) * out_scale + bias`` in y's memory,
        as fp32 (y: the matmul's int32 or fp32 output, contiguous, (N, out))."""
        n, m = y.shape
        if not y.is_contiguous() or y.dtype not in (torch.int32, torch.float32):
            raise ValueError("the matmul's output must be a contiguous int32 or fp32 (N, out) tensor")
        row_scale, out_scale, bias = _f32(row_scale), _f32(out_scale), _f32(bias)
        exact, weight_columns = _f32(exact), _f32(weight_columns)
        ncol = 0 if exact is None else exact.shape[1]
        if row_scale.numel() != n or any(t is not None and t.numel() != m for t in (out_scale, bias)) or \
                (ncol and (exact.shape[0] != n or weight_columns.shape != (ncol, m))):
            raise ValueError("int8 passes: scales, bias or exact columns do not match the output")
        self._lib.lmc_finish(y.data_ptr(), int(y.dtype == torch.int32), n, m, row_scale.data_ptr(), _ptr(out_scale),
                             _ptr(bias), _ptr(exact), ncol, _ptr(weight_columns), torch.get_num_threads())
        return y.view(torch.float32)

    def rmsnorm(self, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        """``weight * x / sqrt(mean(x^2) + eps)`` over x's last dimension, as a new fp32 tensor."""
        x, weight = _f32(x), _f32(weight)
        k = x.shape[-1]
        if weight.numel() != k:
            raise ValueError(f"RMSNorm: {weight.numel()} weights for rows of {k}")
        out = torch.empty_like(x)
        self._lib.lmc_rmsnorm(x.data_ptr(), x.numel() // max(k, 1), k, weight.data_ptr(), eps, out.data_ptr(),
                              torch.get_num_threads())
        return out

    def silu_mul(self, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        """``silu(gate) * up``, written over ``gate`` (contiguous fp32, as ``up``)."""
        if gate.shape != up.shape or any(t.dtype != torch.float32 or not t.is_contiguous() for t in (gate, up)):
            raise ValueError("silu_mul takes two contiguous fp32 tensors of one shape")
        self._lib.lmc_silu_mul(gate.data_ptr(), up.data_ptr(), gate.numel(), torch.get_num_threads())
        return gate


def _f32(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    if t is None or (t.dtype == torch.float32 and t.is_contiguous()):  # the usual case: ~1 us a call saved
        return t
    return t.detach().float().contiguous()


def _ptr(t: Optional[torch.Tensor]) -> Optional[int]:
    return None if t is None else t.data_ptr()


def passes() -> Optional[Passes]:
    """The C passes, or None where the torch passes run (``$LMCLASSIFY_INT8_PASSES``, or
    they cannot be built here: ``status()`` says why)."""
    mode = _mode()
    if mode == "torch":
        return None
    built, why = _build()
    if built is None and mode == "c":
        raise LmClassifyError(f"${ENV}=c: {why}")
    return built


def status() -> str:
    """Which passes int8 layers run here, and why, in a few words."""
    if _mode() == "torch":
        return f"torch passes (${ENV}=torch)"
    built, why = _build()
    return f"C passes ({built.compiler})" if built is not None else f"torch passes ({why})"


def _mode() -> str:
    mode = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if mode not in ("auto", "c", "torch"):
        raise LmClassifyError(f"${ENV} must be auto, c or torch, not {mode!r}")
    return mode


def _torch_openmp() -> Optional[Path]:
    """torch's bundled OpenMP runtime, when it has one: linked by path, so that the passes
    share torch's thread pool instead of starting a second one that fights it for cores."""
    return next(iter(sorted(Path(torch.__file__).parent.glob("lib/libgomp*.so*"))), None)


@lru_cache(maxsize=None)
def _build() -> tuple[Optional[Passes], str]:
    """(the loaded passes, "") or (None, why not). Once per process; the library itself is
    cached per machine, compiler and source."""
    cc = shlex.split(os.environ.get("CC", "")) or [shutil.which("cc") or shutil.which("gcc") or ""]
    if not cc[0] or not shutil.which(cc[0]):
        return None, "no C compiler"
    try:
        version = subprocess.run([*cc, "--version"], capture_output=True, text=True, timeout=30).stdout
        compiler = (version.splitlines() or [cc[0]])[0].strip()
        gomp = _torch_openmp()
        flags = [*FLAGS, *shlex.split(os.environ.get("CFLAGS", ""))]
        cpu = machine_info()  # what -march=native targets; not the thread count, which may change
        key = hashlib.sha256("\n".join([SOURCE.read_text(), compiler, " ".join(flags), str(gomp),
                                        cpu["cpu"], " ".join(cpu["flags"])]).encode()).hexdigest()[:16]
        lib = cache_root() / "int8_passes" / f"{key}.so"
        if not lib.is_file():
            why = _compile(cc, flags, gomp, lib)
            if why:
                return None, why
        built = Passes(ctypes.CDLL(str(lib)), compiler)
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"C passes unavailable: {e}"
    return (built, "") if _agrees_with_torch(built) else (None, "C passes failed their check against torch")


def _compile(cc: list[str], flags: list[str], gomp: Optional[Path], lib: Path) -> str:
    """Compile and link ``SOURCE`` to ``lib`` (atomically); "" or why it failed."""
    lib.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=lib.parent) as tmp:
        obj, out = Path(tmp, "passes.o"), Path(tmp, "passes.so")
        link = [str(gomp), f"-Wl,-rpath,{gomp.parent}"] if gomp else ["-fopenmp"]
        steps = ([*cc, *flags, "-c", str(SOURCE), "-o", str(obj)], [*cc, "-shared", str(obj), "-o", str(out), *link])
        for cmd in steps:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
            if run.returncode != 0:
                last = (run.stderr.strip().splitlines() or ["no message"])[-1]
                return f"the C compiler failed: {last}"
        os.replace(out, lib)
    return ""


def _agrees_with_torch(p: Passes) -> bool:
    """A miscompiled library must never run: the quantized rows must be torch's, bit for bit,
    and a finished output, a norm and a gate within float rounding of torch's."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(37, 70, generator=gen) * 3
    x[:, [4, 50]] *= 40
    cols = torch.tensor([4, 50])
    mags = x.abs().index_fill_(1, cols, 0.0)
    amax = mags.amax(1, keepdim=True).clamp_(min=1e-8)
    q, got_amax, exact = p.quantize(x, cols, int8=True)
    want_q = (x * (127.0 / amax)).round_().to(torch.int8).index_fill_(1, cols, 0)
    unit, _, _ = p.quantize(x, cols, int8=False)
    acc = torch.randint(-5000, 5000, (37, 20), dtype=torch.int32, generator=gen)
    rs, s, b, wc = torch.rand(37, 1, generator=gen), torch.rand(20, generator=gen), torch.randn(20, generator=gen), \
        torch.randn(2, 20, generator=gen)
    want = (acc.float() * rs + x[:, cols] @ wc) * s + b
    y = p.finish(acc.clone(), rs, s, b, exact, wc)
    norm = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * s.repeat(4)[:70]
    g = torch.linspace(-30, 30, 999)
    close = (torch.allclose(p.rmsnorm(x, s.repeat(4)[:70], 1e-5), norm, rtol=1e-5, atol=1e-6)
             and torch.allclose(p.silu_mul(g.clone(), g.flip(0)), torch.nn.functional.silu(g) * g.flip(0),
                                rtol=1e-5, atol=1e-6))
    return (close and torch.equal(q, want_q) and torch.equal(got_amax, amax) and torch.equal(exact, x[:, cols])
            and torch.equal(unit, (x * (1.0 / amax)).index_fill_(1, cols, 0.0))
            and torch.allclose(y, want, rtol=1e-5, atol=1e-3))
