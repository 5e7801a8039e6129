"""The int8 layer: accuracy against fp32, Conv1D weights, and exact massive-activation rows."""
import pytest
import torch
from torch import nn

from lmclassify.models.int8 import OUTLIER_RATIO, Int8Linear, quantize_int8


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).abs().max() / b.abs().max()).detach())


@pytest.mark.parametrize("bias", [True, False])
def test_int8_linear_tracks_fp32(bias):
    torch.manual_seed(0)
    lin = nn.Linear(96, 40, bias=bias)
    x = torch.randn(3, 7, 96)
    q = Int8Linear.from_module(lin)
    assert q(x).shape == (3, 7, 40)
    assert _rel_err(q(x), lin(x)) < 0.03


def test_conv1d_weight_is_read_transposed():
    from transformers.pytorch_utils import Conv1D

    torch.manual_seed(0)
    conv = Conv1D(40, 96)  # GPT-2 layout: weight (in, out)
    x = torch.randn(5, 96)
    assert _rel_err(Int8Linear.from_module(conv)(x), conv(x)) < 0.03


def test_massive_activation_rows_are_exact_and_do_not_hurt_the_others():
    torch.manual_seed(0)
    lin = nn.Linear(64, 32)
    x = torch.randn(40, 64)
    x[0, 5] = 3000.0  # one token with a massive activation, as in deep decoders
    ref = lin(x)
    plain, exact = Int8Linear.from_module(lin), Int8Linear.from_module(lin, exact_outliers=True)
    # per-token scales: the other rows stay accurate either way
    assert _rel_err(plain(x)[1:], ref[1:]) < 0.03
    assert _rel_err(exact(x)[1:], ref[1:]) < 0.03
    # the outlier row itself loses its small channels unless it is computed in fp32
    assert (plain(x)[0] - ref[0]).abs().max() > 0.1
    assert torch.allclose(exact(x)[0], ref[0], atol=1e-3)
    # a row below the ratio is not routed: same output as the plain layer
    x[0, 5] = 0.5 * OUTLIER_RATIO * x[1:].abs().amax(1).median()
    assert torch.equal(exact(x), plain(x))


def test_quantize_int8_skips_kept_modules_and_counts():
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 8), nn.Linear(8, 2))
    head = model[3]
    assert quantize_int8(model, keep={id(head)}) == 2
    assert [type(m).__name__ for m in model] == ["Int8Linear", "ReLU", "Int8Linear", "Linear"]
    assert model[2].weight_fp32 is not None and model[0].weight_fp32 is None  # 32 -> 8 is the MLP output
    assert quantize_int8(nn.Sequential(nn.ReLU())) == 0
