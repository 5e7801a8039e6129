"""int8's passes in C: the same numbers as the torch passes, built once per machine, and a
machine that cannot build them falls back to torch instead of failing."""
import platform
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from lmclassify.errors import LmClassifyError
from lmclassify.models import int8_passes
from lmclassify.models.int8 import Int8Linear
from lmclassify.models.int8_kernels import BY_NAME

# the kernels that also run with the torch passes (``Avx2Gemm`` is C only)
KERNELS = [k for k, cls in BY_NAME.items() if cls.available() and hasattr(cls, "prepare")]


def _input(n: int = 50, k: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    x = torch.randn(n, k) * 2
    cols = torch.tensor([3, 40, 41, 90])
    x[:, cols] *= 60.0  # outlier channels, computed in fp32
    x[7] *= 500.0  # a massive-activation token
    return x, cols


@pytest.mark.parametrize("kernel", KERNELS)
def test_c_passes_quantize_bit_for_bit_as_torch(kernel, c_passes, monkeypatch):
    x, cols = _input()
    w = torch.randn(32, 96)
    amax_c, (rows_c, s_c), exact_c = BY_NAME[kernel](w).quantize(x, cols)
    monkeypatch.setenv(int8_passes.ENV, "torch")
    amax_t, (rows_t, s_t), exact_t = BY_NAME[kernel](w).quantize(x, cols)
    keep = torch.ones(96, dtype=torch.bool)
    keep[cols] = False
    assert torch.equal(amax_c, amax_t) and torch.equal(s_c, s_t) and torch.equal(exact_c, exact_t)
    assert torch.equal(rows_c[:, keep], rows_t[:, keep])
    assert not rows_c[:, cols].any()  # the exact columns' inputs are 0 (their int8 weights are too)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("columns", [True, False])
def test_c_passes_give_the_torch_passes_layer_output(kernel, bias, columns, c_passes, monkeypatch):
    x, cols = _input()
    lin = nn.Linear(96, 130, bias=bias).requires_grad_(False)
    kw = dict(kernel=kernel, columns=cols if columns else None, exact_outliers=True)
    c_layer = Int8Linear.from_module(lin, **kw)
    monkeypatch.setenv(int8_passes.ENV, "torch")
    t_layer = Int8Linear.from_module(lin, **kw)
    assert c_layer._mm.fused is not None and t_layer._mm.fused is None
    with torch.inference_mode():
        got, want = c_layer(x.view(5, 10, 96)), t_layer(x.view(5, 10, 96))
    assert got.shape == (5, 10, 130) and got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))


def test_c_passes_refuse_what_would_read_or_write_out_of_bounds(c_passes):
    x, _ = _input()
    with pytest.raises(ValueError):
        c_passes.quantize(x, torch.tensor([3, 96]), int8=True)  # column 96 of 96
    acc = torch.zeros(50, 20, dtype=torch.int32)
    with pytest.raises(ValueError):
        c_passes.finish(acc, torch.ones(50, 1), torch.ones(21), None, None, None)  # 21 scales for 20 outputs
    with pytest.raises(ValueError):
        c_passes.finish(acc.t(), torch.ones(20, 1), None, None, None, None)  # not contiguous


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_c_passes_share_torchs_openmp_runtime(c_passes):
    """A second OpenMP runtime would keep its own thread pool spinning on torch's cores:
    loading the passes (in a fresh process) must not map one."""
    script = """
import torch
from pathlib import Path
from lmclassify.models import int8_passes

def runtimes():
    return {l.split()[-1] for l in Path("/proc/self/maps").read_text().splitlines() if "omp" in l.split()[-1]}

torch.randn(300, 300) @ torch.randn(300, 300)
before = runtimes()
int8_passes.passes().quantize(torch.randn(300, 300), None, int8=True)
print(sorted(before), sorted(runtimes()))
assert runtimes() == before
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_library_is_built_once_per_machine(c_passes, fresh_build, monkeypatch):
    """Another process, or another thread count, loads what was built: no second compile."""
    monkeypatch.setattr(int8_passes, "_compile", lambda *a: pytest.fail("compiled again"))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1 if threads > 1 else 2)
        assert int8_passes.passes() is not None
    finally:
        torch.set_num_threads(threads)


def _fake_compiler(tmp_path: Path, body: str) -> str:
    cc = tmp_path / "cc"
    cc.write_text(f"#!/bin/sh\n{body}\n")
    cc.chmod(cc.stat().st_mode | stat.S_IEXEC)
    return str(cc)


@pytest.mark.parametrize("cc, why", [("/nonexistent/cc", "no C compiler"),
                                     ("broken", "the C compiler failed: fatal error: no space left")])
def test_a_machine_that_cannot_build_them_runs_the_torch_passes(cc, why, fresh_build, tmp_path, monkeypatch):
    if cc == "broken":
        cc = _fake_compiler(tmp_path, 'case "$1" in --version) echo "fake cc 1.0";; '
                                      '*) echo "fatal error: no space left" >&2; exit 1;; esac')
    monkeypatch.setenv("CC", cc)
    monkeypatch.setenv("LMCLASSIFY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(int8_passes.ENV, "auto")
    assert int8_passes.passes() is None
    assert int8_passes.status() == f"torch passes ({why})"
    assert not list((tmp_path / "cache").rglob("*.so"))  # nothing half-built left behind
    torch.manual_seed(0)
    lin, x = nn.Linear(64, 8).requires_grad_(False), torch.randn(3, 64)
    layer = Int8Linear.from_module(lin)
    assert layer._mm.fused is None
    assert float((layer(x) - lin(x)).abs().max() / lin(x).abs().max()) < 0.03
    monkeypatch.setenv(int8_passes.ENV, "c")
    with pytest.raises(LmClassifyError, match=f"LMCLASSIFY_INT8_PASSES=c: {why}"):
        int8_passes.passes()


def test_a_library_that_computes_wrong_is_never_used(c_passes, fresh_build, monkeypatch):
    monkeypatch.setattr(int8_passes.Passes, "finish", lambda self, y, *a: y.view(torch.float32) * 0)
    monkeypatch.setenv(int8_passes.ENV, "auto")
    assert int8_passes.passes() is None
    assert int8_passes.status() == "torch passes (C passes failed their check against torch)"


def test_the_setting_is_checked(monkeypatch):
    monkeypatch.setenv(int8_passes.ENV, "torch")
    assert int8_passes.passes() is None and int8_passes.status().startswith("torch passes")
    monkeypatch.setenv(int8_passes.ENV, "asm")
    with pytest.raises(LmClassifyError, match="must be auto, c or torch"):
        int8_passes.passes()


def test_a_model_on_c_passes_can_be_copied_and_pickled(c_passes):
    """A loaded library cannot be pickled: copies share it, and an unpickled layer takes the
    passes of the machine it lands on."""
    import copy
    import pickle

    torch.manual_seed(0)
    layer = Int8Linear.from_module(nn.Linear(32, 16))
    x = torch.randn(4, 32)
    for other in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert other._mm.fused is layer._mm.fused
        assert torch.equal(other(x), layer(x))


def _gcc() -> str:
    cc = shutil.which("gcc") or ""
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout if cc else ""
    return cc if "Free Software Foundation" in version else ""


@pytest.mark.skipif(not _gcc() or platform.machine() not in ("x86_64", "AMD64"),
                    reason="needs GCC (its vectorizer report) targeting x86-64")
def test_the_elementwise_passes_are_vectorized_for_avx2(tmp_path):
    """Built for AVX2 without -fno-trapping-math, GCC left SiLU's loop scalar (its clamp and
    rounding may raise FP flags): the C pass ran 6.5x slower than with it, 3x slower than torch."""
    src = int8_passes.SOURCE.read_text().splitlines()
    loops = {i + 2 for i, line in enumerate(src) if line.lstrip().startswith("#pragma omp") and "simd" in line}
    run = subprocess.run([_gcc(), *int8_passes.FLAGS, "-march=haswell", "-fopt-info-vec-all", "-c",
                          str(int8_passes.SOURCE), "-o", str(tmp_path / "passes.o")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    vectorized = {int(m) for m in re.findall(r"int8_passes\.c:(\d+):\d+: optimized: loop vectorized", run.stderr)}
    # GCC names a line of the loop's body (its first statements), not always the ``for``
    scalar = [line for line in loops if not vectorized & set(range(line, line + 3))]
    assert len(loops) >= 10 and not scalar, f"loops left scalar at lines {scalar}"
