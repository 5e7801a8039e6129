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

The same library carries an int8 matmul for AVX2 CPUs (``int8_gemm.c``, used by
``int8_kernels.Avx2Gemm``): ``gemm`` finishes its output in the tiles' registers (the
``finish`` pass's arithmetic), so its layers have one pass before the matmul and none after.
It exists where the compiler targets AVX2 (``has_gemm``) and its exact integer products
pass their own check; failing that only the kernel goes, not the passes.

Built once per machine with the system's C compiler (``$CC``, else ``cc``) at
``-O3 -march=native -fno-trapping-math`` (then ``$CFLAGS``, which may override it) with OpenMP linked to
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
GEMM_SOURCE = Path(__file__).with_name("int8_gemm.c")  # the AVX2 matmul (int8_kernels.Avx2Gemm), same library
# int8_gemm.c's operands: integers in [-63, 63], activations stored + 64; outputs in panels of 16
GEMM_LEVELS, GEMM_OFFSET, GEMM_PANEL = 63, 64, 16
# -fno-trapping-math: without it GCC leaves SiLU's loop scalar for AVX2 (its clamp and rounding
# may raise FP flags, which no one reads here): 3x slower than torch's silu * up; same results
FLAGS = ("-O3", "-march=native", "-fno-trapping-math", "-fPIC", "-fopenmp", "-std=gnu11")
BUILD_TIMEOUT_S = 120


class Passes:
    """The compiled passes, called on torch tensors (checked here: C trusts its pointers)."""

    def __init__(self, lib: ctypes.CDLL, compiler: str):
        p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
        lib.lmc_quantize.argtypes = [p, i64, i64, p, i64, p, p, p, p, ctypes.c_float, i32, i32]
        lib.lmc_quantize.restype = i32
        lib.lmc_gemm_available.argtypes, lib.lmc_gemm_available.restype = [], i32
        lib.lmc_gemm_packed_size.argtypes, lib.lmc_gemm_packed_size.restype = [i64, i64], i64
        lib.lmc_gemm_pack.argtypes, lib.lmc_gemm_pack.restype = [p, i64, i64, p, p], None
        lib.lmc_gemm.argtypes, lib.lmc_gemm.restype = [p, i64, i64, p, p, i64, p, p, p, p, p, i64, p, i32], i32
        lib.lmc_finish.argtypes = [p, i32, i64, i64, p, p, p, p, i64, p, i32]
        lib.lmc_finish.restype = None
        lib.lmc_rmsnorm.argtypes = [p, i64, i64, p, ctypes.c_float, p, i32]
        lib.lmc_rmsnorm.restype = None
        lib.lmc_silu_mul.argtypes = [p, p, i64, i32]
        lib.lmc_silu_mul.restype = None
        self._lib, self.compiler = lib, compiler
        self.has_gemm = bool(lib.lmc_gemm_available())  # compiled for a CPU with AVX2

    def __deepcopy__(self, memo: dict) -> "Passes":
        return self  # a loaded library: copies of a model share it

    def __reduce__(self):
        return passes, ()  # unpickled: this machine's own passes (or None: the torch passes)

    def quantize(self, x2: torch.Tensor, columns: Optional[torch.Tensor], int8: bool, levels: int = 127,
                 offset: int = 0) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """(int8 rows scaled by ``levels`` / abs-max plus ``offset``, or fp32 rows divided by
        the abs-max; their abs-max (N, 1) over the columns not in ``columns``; x2's
        ``columns`` (N, k) or None)."""
        if not (0 < levels and -128 <= offset - levels and offset + levels <= 127):
            raise ValueError(f"int8 rows cannot hold {levels} levels around {offset}")
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
                                    amax.data_ptr(), _ptr(exact), float(levels), offset, torch.get_num_threads())
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
        _held, args = _finish_args(n, m, row_scale, out_scale, bias, exact, weight_columns)
        self._lib.lmc_finish(y.data_ptr(), int(y.dtype == torch.int32), n, m, *args, torch.get_num_threads())
        return y.view(torch.float32)

    def gemm_pack(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(w (out, in), int8 in [-63, 63], packed as ``gemm`` reads it; what the
        activations' offset adds to each output, to take off)."""
        if not self.has_gemm:
            raise RuntimeError("this library was built without AVX2: no int8 gemm")
        top = GEMM_LEVELS
        if w.dtype != torch.int8 or w.dim() != 2 or (w.numel() and not -top <= int(w.min()) <= int(w.max()) <= top):
            raise ValueError(f"gemm_pack takes an (out, in) int8 matrix with entries in [-{top}, {top}]")
        w = w.contiguous()
        n, k = w.shape
        packed = torch.empty(self._lib.lmc_gemm_packed_size(n, k), dtype=torch.int8)
        comp = torch.empty(_whole_panels(n), dtype=torch.int32)
        self._lib.lmc_gemm_pack(w.data_ptr(), n, k, packed.data_ptr(), comp.data_ptr())
        return packed, comp

    def gemm(self, a: torch.Tensor, packed: tuple[torch.Tensor, torch.Tensor], n: int,
             row_scale: Optional[torch.Tensor] = None, out_scale: Optional[torch.Tensor] = None,
             bias: Optional[torch.Tensor] = None, exact: Optional[torch.Tensor] = None,
             weight_columns: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``(a - 64) @ w^T`` (N, n): ``a`` (N, in) holds rows quantized with ``levels=63,
        offset=64``, ``packed`` is ``gemm_pack(w)`` of w (n, in). As int32, or with
        ``row_scale`` finished as ``finish`` would (fp32), from the tiles' registers: the
        output is written once instead of written, read and written again."""
        weights, comp = packed
        if a.dtype != torch.int8 or a.dim() != 2 or not a.is_contiguous():
            raise ValueError("gemm takes contiguous (N, in) int8 rows")
        m, k = a.shape
        if weights.numel() != self._lib.lmc_gemm_packed_size(n, k) or comp.numel() != _whole_panels(n):
            raise ValueError(f"gemm: packed weights are not for {n} outputs of {k} inputs")
        finished = row_scale is not None
        _held, args = _finish_args(m, n, row_scale, out_scale, bias, exact, weight_columns) if finished else \
            ((), (None, None, None, None, 0, None))
        out = torch.empty(m, n, dtype=torch.float32 if finished else torch.int32)
        if m and self._lib.lmc_gemm(a.data_ptr(), m, k, weights.data_ptr(), comp.data_ptr(), n, out.data_ptr(),
                                    *args, torch.get_num_threads()) != 0:
            raise RuntimeError("this library was built without AVX2: no int8 gemm")
        return out

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


def _finish_args(n: int, m: int, row_scale: torch.Tensor, out_scale: Optional[torch.Tensor],
                 bias: Optional[torch.Tensor], exact: Optional[torch.Tensor],
                 weight_columns: Optional[torch.Tensor]) -> tuple[tuple, tuple]:
    """What C's finish reads for an (n, m) output, checked (C trusts its pointers): (the
    tensors as fp32, to hold while C runs; pointers to the row scales, out scales, bias,
    exact columns, their count, their weights)."""
    row_scale, out_scale, bias = _f32(row_scale), _f32(out_scale), _f32(bias)
    exact, weight_columns = _f32(exact), _f32(weight_columns)
    ncol = 0 if exact is None else exact.shape[1]
    if row_scale.numel() != n or any(t is not None and t.numel() != m for t in (out_scale, bias)) or \
            (ncol and (exact.shape[0] != n or weight_columns is None or weight_columns.shape != (ncol, m))):
        raise ValueError("int8 passes: scales, bias or exact columns do not match the output")
    held = (row_scale, out_scale, bias, exact, weight_columns)
    return held, (row_scale.data_ptr(), _ptr(out_scale), _ptr(bias), _ptr(exact), ncol, _ptr(weight_columns))


def _whole_panels(n: int) -> int:
    """n outputs rounded up to whole panels: the length of the gemm's column sums."""
    return -(-n // GEMM_PANEL) * GEMM_PANEL


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
        parts = [SOURCE.read_text(), GEMM_SOURCE.read_text(), compiler, " ".join(flags), str(gomp), cpu["cpu"],
                 " ".join(cpu["flags"])]
        key = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
        lib = cache_root() / "int8_passes" / f"{key}.so"
        if not lib.is_file():
            why = _compile(cc, flags, gomp, lib)
            if why:
                return None, why
        built = Passes(ctypes.CDLL(str(lib)), compiler)
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"C passes unavailable: {e}"
    if not _agrees_with_torch(built):
        return None, "C passes failed their check against torch"
    built.has_gemm = built.has_gemm and _gemm_is_exact(built)
    return built, ""


def _compile(cc: list[str], flags: list[str], gomp: Optional[Path], lib: Path) -> str:
    """Compile ``SOURCE`` and ``GEMM_SOURCE`` and link them to ``lib`` (atomically); "" or why it failed."""
    lib.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=lib.parent) as tmp:
        objs, out = [Path(tmp, f"{src.stem}.o") for src in (SOURCE, GEMM_SOURCE)], Path(tmp, "passes.so")
        link = [str(gomp), f"-Wl,-rpath,{gomp.parent}"] if gomp else ["-fopenmp"]
        steps = ([*cc, *flags, "-c", str(src), "-o", str(obj)] for src, obj in zip((SOURCE, GEMM_SOURCE), objs))
        steps = [*steps, [*cc, "-shared", *map(str, objs), "-o", str(out), *link]]
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


def _gemm_is_exact(p: Passes) -> bool:
    """The AVX2 gemm must give torch's integer product exactly (every edge its tiles have:
    rows past a whole tile, an odd group of 4 inputs and a partial one, a partial panel),
    from rows quantized as it expects them; else it is not offered."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(7, 70, generator=gen)
    a, amax, _ = p.quantize(x, None, int8=True, levels=GEMM_LEVELS, offset=GEMM_OFFSET)
    w = torch.randint(-GEMM_LEVELS, GEMM_LEVELS + 1, (21, 70), dtype=torch.int8, generator=gen)
    q = (x * (GEMM_LEVELS / amax)).round_()
    return torch.equal(a, (q + GEMM_OFFSET).to(torch.int8)) and \
        torch.equal(p.gemm(a, p.gemm_pack(w), 21), (q.int() @ w.int().t()))
