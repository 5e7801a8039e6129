"""The AVX2 int8 matmul (``int8_gemm.c``): exact integer products on every tile edge, rows
quantized as it reads them, refusals, and where it is not built it is not offered."""
import pytest
import torch
from torch import nn

from lmclassify.errors import LmClassifyError
from lmclassify.models import int8_kernels, int8_passes
from lmclassify.models.int8 import Int8Linear
from lmclassify.models.int8_kernels import BY_NAME


@pytest.fixture
def gemm(c_passes):
    if not c_passes.has_gemm:
        pytest.skip("the C passes were built for a CPU without AVX2")
    return c_passes


# rows: whole 4-row tiles and 1-3 left; inputs: whole pairs of 4, an odd 4, a partial 4;
# outputs: whole 16-column panels and partial ones
@pytest.mark.parametrize("m", [1, 3, 4, 9, 70])
@pytest.mark.parametrize("k", [1, 3, 4, 8, 13, 70, 384])
@pytest.mark.parametrize("n", [1, 16, 17, 40])
def test_gemm_is_the_exact_integer_product(gemm, m, k, n):
    gen = torch.Generator().manual_seed(m * 1000 + k * 10 + n)
    q = torch.randint(-63, 64, (m, k), dtype=torch.int8, generator=gen)
    w = torch.randint(-63, 64, (n, k), dtype=torch.int8, generator=gen)
    w[0, :] = 63  # the extremes: every 16-bit pair sum at its largest
    q[0, :] = 63
    got = gemm.gemm((q + 64).contiguous(), gemm.gemm_pack(w), n)
    assert got.dtype == torch.int32 and torch.equal(got, q.int() @ w.int().t())


@pytest.mark.parametrize("n", [16, 17, 40])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("ncol", [0, 3])
def test_gemm_finishes_its_tiles_as_the_finish_pass_would(gemm, n, bias, ncol):
    """Row scales, exact columns, out scales and bias applied in the tile: the finish pass's
    numbers (within float rounding), full and partial panels alike."""
    gen = torch.Generator().manual_seed(n + ncol)
    q = torch.randint(-63, 64, (11, 70), dtype=torch.int8, generator=gen)
    w = torch.randint(-63, 64, (n, 70), dtype=torch.int8, generator=gen)
    rs, s = torch.rand(11, 1, generator=gen), torch.rand(n, generator=gen)
    b = torch.randn(n, generator=gen) if bias else None
    exact, wc = (torch.randn(11, ncol, generator=gen), torch.randn(ncol, n, generator=gen)) if ncol else (None, None)
    packed = gemm.gemm_pack(w)
    got = gemm.gemm(q + 64, packed, n, rs, s, b, exact, wc)
    want = gemm.finish(gemm.gemm(q + 64, packed, n), rs, s, b, exact, wc)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-4)
    with pytest.raises(ValueError, match="do not match"):
        gemm.gemm(q + 64, packed, n, rs[:5], s, b, exact, wc)


def test_many_rows_over_threads_are_exact(gemm):
    gen = torch.Generator().manual_seed(0)
    q = torch.randint(-63, 64, (2243, 384), dtype=torch.int8, generator=gen)
    w = torch.randint(-63, 64, (1536, 384), dtype=torch.int8, generator=gen)
    assert torch.equal(gemm.gemm(q + 64, gemm.gemm_pack(w), 1536), q.int() @ w.int().t())


def test_rows_are_quantized_to_63_levels_around_64(gemm):
    x = torch.randn(20, 50) * 4
    x[3] *= 1000
    a, amax, _ = gemm.quantize(x, torch.tensor([7]), int8=True, levels=63, offset=64)
    want = (x * (63.0 / amax)).round_() + 64
    want[:, 7] = 64  # the exact column reads as 0
    assert torch.equal(a, want.to(torch.int8)) and int(a.min()) >= 1 and int(a.max()) <= 127


def test_gemm_refuses_what_it_cannot_compute_exactly(gemm):
    with pytest.raises(ValueError, match=r"\[-63, 63\]"):
        gemm.gemm_pack(torch.full((4, 8), -64, dtype=torch.int8))  # would overflow 16-bit sums
    packed = gemm.gemm_pack(torch.ones(4, 8, dtype=torch.int8))
    with pytest.raises(ValueError, match="not for"):
        gemm.gemm(torch.ones(3, 12, dtype=torch.int8), packed, 4)  # 12 inputs, packed for 8
    with pytest.raises(ValueError, match="contiguous"):
        gemm.gemm(torch.ones(8, 3, dtype=torch.int8).t(), packed, 4)
    with pytest.raises(ValueError, match="levels"):
        gemm.quantize(torch.randn(2, 8), None, int8=True, levels=100, offset=64)


def test_avx2_layer_tracks_fp32_within_its_7_bits(gemm):
    """63 levels a side instead of 127: about twice int_mm's error, and no more."""
    torch.manual_seed(0)
    lin = nn.Linear(384, 200).requires_grad_(False)
    x = torch.randn(64, 384)
    want = lin(x)
    errs = {k: float((Int8Linear.from_module(lin, kernel=k)(x) - want).abs().mean() / want.abs().mean())
            for k in ("avx2", "int_mm") if BY_NAME[k].available()}
    assert errs["avx2"] < 0.03
    if "int_mm" in errs:
        assert errs["int_mm"] < errs["avx2"] < 3 * errs["int_mm"]


def test_a_library_built_without_avx2_offers_no_avx2_kernel(c_passes, fresh_build, tmp_path, monkeypatch):
    monkeypatch.setenv("LMCLASSIFY_CACHE", str(tmp_path))
    monkeypatch.setenv("CFLAGS", "-march=x86-64")  # SSE2 only: the passes build, the kernel does not
    p = int8_passes.passes()
    assert p is not None and not p.has_gemm and not BY_NAME["avx2"].available()
    with pytest.raises(RuntimeError, match="AVX2"):
        p.gemm_pack(torch.ones(2, 4, dtype=torch.int8))
    monkeypatch.setenv(int8_kernels.ENV, "avx2")
    with pytest.raises(LmClassifyError, match="cannot run that kernel"):
        int8_kernels.choose_kernel({(8, 8): 1})


def test_a_gemm_that_computes_wrong_is_never_offered(c_passes, fresh_build, monkeypatch):
    """Its check failing costs the kernel, not the passes."""
    monkeypatch.setattr(int8_passes.Passes, "gemm", lambda self, a, packed, n: torch.zeros(a.shape[0], n,
                                                                                           dtype=torch.int32))
    p = int8_passes.passes()
    assert p is not None and not p.has_gemm and not BY_NAME["avx2"].available()
