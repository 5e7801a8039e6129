"""The int8 layer: accuracy against fp32, Conv1D weights, and exact massive-activation rows."""
import pytest
import torch
from torch import nn

from lmclassify.errors import LmClassifyError
from lmclassify.machine import machine_info
from lmclassify.models import int8_kernels, int8_passes, kernel_choice
from lmclassify.models.int8 import (OUTLIER_RATIO, Int8Linear, layer_shapes, linear_targets, outlier_columns,
                                    quantize_int8)
from lmclassify.models.int8_kernels import BY_NAME, choose_kernel

KERNELS = [k for k, cls in BY_NAME.items() if cls.available()]


@pytest.fixture(params=["c", "torch"])
def passes(request, monkeypatch):
    """Each kernel's layers with the passes around the matmul in C and as torch ops."""
    monkeypatch.setenv(int8_passes.ENV, request.param)
    if request.param == "c":
        try:
            int8_passes.passes()
        except LmClassifyError as e:
            pytest.skip(str(e))
    kernel = getattr(request.node, "callspec", None) and request.node.callspec.params.get("kernel")
    if kernel and not BY_NAME[kernel].available():  # the avx2 kernel is C only
        pytest.skip(f"{kernel} does not run with {request.param} passes")
    return request.param


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).abs().max() / b.abs().max()).detach())


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("bias", [True, False])
def test_int8_linear_tracks_fp32(bias, kernel, passes):
    torch.manual_seed(0)
    lin = nn.Linear(96, 40, bias=bias)
    x = torch.randn(3, 7, 96)
    q = Int8Linear.from_module(lin, kernel=kernel)
    assert q(x).shape == (3, 7, 40)
    assert _rel_err(q(x), lin(x)) < 0.03


@pytest.mark.parametrize("kernel", KERNELS)
def test_every_kernel_scales_per_token(kernel, passes):
    """A row 1,000x larger than the others must not cost the others their precision:
    FBGEMM scales a batch by one number, so its rows are divided by their abs-max first."""
    torch.manual_seed(0)
    lin = nn.Linear(64, 32)
    x = torch.randn(40, 64)
    x[0] *= 1000.0
    q = Int8Linear.from_module(lin, kernel=kernel)
    assert _rel_err(q(x)[1:], lin(x)[1:]) < 0.03
    assert _rel_err(q(x)[:1], lin(x)[:1]) < 0.03


@pytest.mark.skipif(not BY_NAME["int_mm"].available(), reason="torch._int_mm missing")
def test_int_mm_output_converted_in_place_equals_the_plain_conversion(monkeypatch):
    """The torch passes turn ``IntMM``'s int32 result into fp32 in the same memory (no
    temporary): every value must be what ``float()`` then the scales give, bit for bit."""
    monkeypatch.setenv(int8_passes.ENV, "torch")
    torch.manual_seed(0)
    kernel = BY_NAME["int_mm"](torch.randn(48, 64))
    x = torch.randn(40, 64) * 3
    _, (q, scale), _ = kernel.quantize(x)
    expected = torch._int_mm(q, kernel.qweight).float() * scale * kernel.out_scale
    assert torch.equal(kernel.run((q, scale)), expected)


def test_conv1d_weight_is_read_transposed():
    from transformers.pytorch_utils import Conv1D

    torch.manual_seed(0)
    conv = Conv1D(40, 96)  # GPT-2 layout: weight (in, out)
    x = torch.randn(5, 96)
    assert _rel_err(Int8Linear.from_module(conv)(x), conv(x)) < 0.03


@pytest.mark.parametrize("kernel", KERNELS)
def test_massive_activation_rows_are_exact_and_do_not_hurt_the_others(kernel, passes):
    torch.manual_seed(0)
    lin = nn.Linear(64, 32)
    x = torch.randn(40, 64)
    x[0, 5] = 3000.0  # one token with a massive activation, as in deep decoders
    ref = lin(x)
    plain = Int8Linear.from_module(lin, kernel=kernel)
    exact = Int8Linear.from_module(lin, exact_outliers=True, kernel=kernel)
    # per-token scales: the other rows stay accurate either way
    assert _rel_err(plain(x)[1:], ref[1:]) < 0.03
    assert _rel_err(exact(x)[1:], ref[1:]) < 0.03
    # the outlier row itself loses its small channels unless it is computed in fp32
    assert (plain(x)[0] - ref[0]).abs().max() > 0.1
    assert torch.allclose(exact(x)[0], ref[0], atol=1e-3)
    # a row below the ratio is not routed: same output as the plain layer
    x[0, 5] = 0.5 * OUTLIER_RATIO * x[1:].abs().amax(1).median()
    assert torch.equal(exact(x), plain(x))


@pytest.mark.parametrize("kernel", KERNELS)
def test_exact_columns_keep_an_outlier_channel_from_costing_the_rest(kernel, passes):
    """A channel ~100x the others in every token sets every token's scale; computed in fp32
    beside the int8 matmul, it no longer does. With ``_int_mm`` a row's result does not
    depend on its batch (FBGEMM's shared activation scale still moves it a little)."""
    torch.manual_seed(0)
    lin = nn.Linear(128, 48).requires_grad_(False)
    x = torch.randn(40, 128)
    x[:, [5, 77]] *= 100.0
    ref = lin(x)
    plain = Int8Linear.from_module(lin, kernel=kernel)
    exact = Int8Linear.from_module(lin, kernel=kernel, columns=torch.tensor([77, 5]))
    err_plain = float((plain(x) - ref).abs().mean())
    err_exact = float((exact(x) - ref).abs().mean())
    assert err_exact < err_plain / 10
    assert _rel_err(exact(x), ref) < 0.01
    assert torch.allclose(exact(x[3:4]), exact(x)[3:4], atol=1e-5 if kernel == "int_mm" else 0.05)
    assert "exact_columns=2" in repr(exact)


def test_outlier_columns_are_the_inputs_calibration_finds_largest():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 96), nn.ReLU(), nn.Linear(96, 8))
    unused = nn.Linear(64, 64)
    x = torch.randn(30, 64)
    x[:, 3] *= 50.0
    x[::7, 17] = 400.0  # large in a few tokens only: still an outlier column
    cols = outlier_columns([model[0], model[2], unused], lambda: model(x))
    assert set(cols) == {id(model[0]), id(model[2])}  # a layer calibration never reached gets none
    assert len(cols[id(model[0])]) == 64 // 16 and {3, 17} <= set(cols[id(model[0])].tolist())
    assert len(cols[id(model[2])]) == 96 // 16
    assert not model[0]._forward_pre_hooks  # the calibration hooks are gone


def test_quantize_int8_skips_kept_modules_and_counts():
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 8), nn.Linear(8, 2))
    head = model[3]
    assert quantize_int8(model, keep={id(head)}) == 2
    assert [type(m).__name__ for m in model] == ["Int8Linear", "ReLU", "Int8Linear", "Linear"]
    assert model[2].weight_fp32 is not None and model[0].weight_fp32 is None  # 32 -> 8 is the MLP output
    assert quantize_int8(nn.Sequential(nn.ReLU())) == 0


def test_layer_shapes_count_what_the_timing_check_runs():
    model = nn.Sequential(nn.Linear(8, 32), nn.Linear(32, 8), nn.Linear(8, 32), nn.Linear(8, 2))
    assert layer_shapes(linear_targets(model, keep={id(model[3])})) == {(8, 32): 2, (32, 8): 1}


def test_env_forces_a_kernel_or_fp32(monkeypatch):
    shapes = {(16, 16): 1}
    for name in KERNELS:
        monkeypatch.setenv(int8_kernels.ENV, name)
        assert choose_kernel(shapes).kernel == name
    monkeypatch.setenv(int8_kernels.ENV, "fp32")
    assert choose_kernel(shapes).kernel is None
    monkeypatch.setenv(int8_kernels.ENV, "avx9000")
    with pytest.raises(LmClassifyError, match="LMCLASSIFY_INT8_KERNEL"):
        choose_kernel(shapes)


def _fake_timings(monkeypatch, ms: dict) -> list:
    calls = []

    def fake(shapes, kernels, rows=kernel_choice.TIMING_ROWS, **_):
        calls.append(shapes)
        return dict(ms)

    monkeypatch.setattr(kernel_choice, "time_kernels", fake)
    return calls


def test_fastest_kernel_is_chosen_timed_once_then_cached(monkeypatch):
    monkeypatch.delenv(int8_kernels.ENV, raising=False)
    monkeypatch.setattr(kernel_choice, "_machine_is_busy", lambda: False)
    slow_int_mm = {"fp32": 3.4, "int_mm": 139.0, "fbgemm": 1.6}  # the AVX2-only EPYC of issue 14
    calls = _fake_timings(monkeypatch, slow_int_mm)
    first = choose_kernel({(576, 1536): 3})
    assert (first.kernel, first.source) == ("fbgemm", "timed")
    again = choose_kernel({(576, 1536): 3})
    assert (again.kernel, again.source) == ("fbgemm", "cache") and len(calls) == 1
    assert "fbgemm" in again.describe() and "139.00 ms" in again.describe()
    # other shapes are another entry: timed again
    assert choose_kernel({(384, 1536): 1}).source == "timed" and len(calls) == 2


def test_the_passes_around_the_matmul_are_part_of_the_cached_choice(monkeypatch):
    """C or torch passes move the race against fp32: a choice timed with one is not reused
    with the other, and the description says which ran."""
    monkeypatch.delenv(int8_kernels.ENV, raising=False)
    monkeypatch.setattr(kernel_choice, "_machine_is_busy", lambda: False)
    calls = _fake_timings(monkeypatch, {"fp32": 9.0, "int_mm": 3.0, "fbgemm": 4.0})
    monkeypatch.setenv(int8_passes.ENV, "torch")
    with_torch = choose_kernel({(96, 96): 1})
    assert with_torch.source == "timed" and "with torch passes" in with_torch.describe()
    monkeypatch.setattr(int8_passes, "status", lambda: "C passes (cc 1.0)")
    with_c = choose_kernel({(96, 96): 1})
    assert with_c.source == "timed" and len(calls) == 2 and "with C passes (cc 1.0)" in with_c.describe()
    assert choose_kernel({(96, 96): 1}).source == "cache"


def test_a_busy_machine_goes_by_cpu_flags_and_caches_nothing(monkeypatch):
    monkeypatch.delenv(int8_kernels.ENV, raising=False)
    monkeypatch.setattr(kernel_choice, "_machine_is_busy", lambda: True)
    calls = _fake_timings(monkeypatch, {"fp32": 9.0, "int_mm": 44.0, "fbgemm": 23.0})  # what neighbours do to it
    busy = choose_kernel({(576, 1536): 1})
    assert busy.kernel == int8_kernels.preferred_kernel(machine_info()["flags"]) and not calls
    assert "busy" in busy.source
    monkeypatch.setattr(kernel_choice, "_machine_is_busy", lambda: False)
    assert choose_kernel({(576, 1536): 1}).source == "timed" and len(calls) == 1


@pytest.mark.parametrize("flags,expected", [(["avx2", "avx512f", "avx512_vnni"], "int_mm"),
                                            (["avx2", "amx_int8"], "int_mm"), (["avx2"], "avx2"),
                                            (["avx2", "avx_vnni"], "avx2")])
def test_cpu_flags_pick_the_kernel_with_a_fast_path(flags, expected):
    """torch gates ``_int_mm``'s fast path on AVX-512 VNNI: AVX-VNNI alone is an AVX2 CPU."""
    if expected not in KERNELS:
        pytest.skip(f"{expected} not available here")
    assert int8_kernels.preferred_kernel(flags) == expected


def test_without_our_avx2_kernel_an_avx2_cpu_goes_to_fbgemm(monkeypatch):
    monkeypatch.setenv(int8_passes.ENV, "torch")  # no C: no avx2 kernel
    if not BY_NAME["fbgemm"].available():
        pytest.skip("fbgemm not in this torch build")
    assert int8_kernels.preferred_kernel(["avx2"]) == "fbgemm"


def test_fp32_stays_when_no_integer_kernel_wins(monkeypatch):
    monkeypatch.delenv(int8_kernels.ENV, raising=False)
    monkeypatch.setattr(kernel_choice, "_machine_is_busy", lambda: False)
    _fake_timings(monkeypatch, {"fp32": 1.0, "int_mm": 0.95, "fbgemm": 2.0})  # < MIN_GAIN faster
    assert choose_kernel({(32, 32): 1}).kernel is None


def test_real_timing_check_returns_every_available_kernel():
    ms = kernel_choice.time_kernels({(64, 128): 2}, BY_NAME, rows=32)
    assert set(ms) == {"fp32", *KERNELS} and all(v > 0 for v in ms.values())


@pytest.mark.parametrize("kernel", KERNELS)
def test_layers_reading_one_input_quantize_it_once(kernel, passes, tiny_llama_dir, monkeypatch):
    """q/k/v read one tensor, gate/up another: 4 quantizations per Llama block, not 7, and
    the same outputs as quantizing for every layer."""
    from helpers import build_classifier
    from lmclassify.models import int8

    net, _, _ = build_classifier(tiny_llama_dir, {0: "a", 1: "b"})
    quantize_int8(net, keep={id(m) for m in net.head.modules()}, kernel=kernel)  # as quantize() does
    ids = torch.randint(3, 200, (3, 11))
    mask = torch.ones_like(ids)
    calls = []
    quantize = BY_NAME[kernel].quantize
    monkeypatch.setattr(BY_NAME[kernel], "quantize", lambda *a: calls.append(1) or quantize(*a))
    with torch.inference_mode():
        shared = net(input_ids=ids, attention_mask=mask)
    n = net.backbone.n_layers
    # the last block of a last-token model projects queries for the last token only
    assert len(calls) == 4 * n + net.fast_last
    real = int8.quantized_input
    monkeypatch.setattr(int8, "quantized_input", lambda x, *a: (x.__dict__.pop(int8._MEMO, None), real(x, *a))[1])
    with torch.inference_mode():
        assert torch.equal(net(input_ids=ids, attention_mask=mask), shared)
    assert len(calls) == 4 * n + net.fast_last + 7 * n


def test_an_input_changed_in_place_is_quantized_again():
    torch.manual_seed(0)
    lin = nn.Linear(32, 16)
    q = Int8Linear.from_module(lin)
    x = torch.randn(5, 32)
    with torch.no_grad():
        q(x)
        x.mul_(3.0)
        assert torch.equal(q(x), q(x.clone()))


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_quantized_input_is_freed_with_its_quantization(kernel, passes):
    """The quantization rides on the input tensor; nothing it holds may keep the input alive."""
    import gc
    import weakref

    q = Int8Linear.from_module(nn.Linear(32, 16), kernel=kernel)
    with torch.inference_mode():
        x = torch.randn(4, 8, 32)
        q(x)
        gone = weakref.ref(x)
        del x
    gc.collect()
    assert gone() is None
