"""int8 Llama blocks run RMSNorm and the gated MLP's activation in one C pass each: the
same numbers as torch's ops, only where int8 quantized, never on a look-alike, and a block
that needs gradients keeps torch's ops."""
import pytest
import torch
from torch import nn

from helpers import build_classifier
from lmclassify.models import int8_passes
from lmclassify.models.int8 import Int8Linear, int8_prefix_copy, quantize_int8
from lmclassify.models.int8_fusions import FusedGatedMLP, FusedRMSNorm, fuse_elementwise

pytestmark = pytest.mark.one_thread


def _llama(tiny_llama_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).model.eval()


def test_c_rmsnorm_and_silu_mul_match_torch(c_passes):
    torch.manual_seed(0)
    x = torch.randn(2, 7, 96) * 3
    x[0, 3] *= 800  # a massive-activation token
    w = torch.rand(96) + 0.5
    want = w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))
    got = c_passes.rmsnorm(x, w, 1e-6)
    assert got.shape == x.shape and torch.allclose(got, want, rtol=1e-5, atol=1e-6)
    assert torch.allclose(c_passes.rmsnorm(x[:, ::2], w, 1e-6), want[:, ::2], rtol=1e-5, atol=1e-6)  # not contiguous

    g = torch.cat([torch.randn(4000) * 6, torch.tensor([-200.0, -88.0, -87.5, 0.0, 87.5, 88.0, 200.0])])
    u = torch.randn_like(g)
    want = nn.functional.silu(g) * u
    out = c_passes.silu_mul(g, u)
    assert out is g  # in place: no fresh multi-MB buffer
    assert torch.allclose(out, want, rtol=2e-6, atol=1e-6)
    with pytest.raises(ValueError):
        c_passes.silu_mul(torch.randn(4, 6), torch.randn(6, 4))
    with pytest.raises(ValueError):
        c_passes.silu_mul(torch.randn(6, 4).t(), torch.randn(4, 6))
    with pytest.raises(ValueError):
        c_passes.rmsnorm(x, torch.ones(95), 1e-6)


def test_int8_llama_runs_fused_blocks_with_the_same_numbers(tiny_llama_dir, c_passes):
    model = _llama(tiny_llama_dir)
    ids = torch.randint(0, 50257, (3, 11), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        fp32 = model(ids).last_hidden_state
    quantize_int8(model)
    assert all(isinstance(b.mlp, FusedGatedMLP) and isinstance(b.input_layernorm, FusedRMSNorm)
               and isinstance(b.post_attention_layernorm, FusedRMSNorm) for b in model.layers)
    assert isinstance(model.norm, FusedRMSNorm) and isinstance(model.layers[0].mlp.down_proj, Int8Linear)
    torch_ops = _llama(tiny_llama_dir)  # the same int8 model, its norms and MLPs left as torch ops
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("lmclassify.models.int8.fuse_elementwise", lambda *a, **k: 0)
        quantize_int8(torch_ops)
    assert type(torch_ops.norm).__name__ == "LlamaRMSNorm"
    names = lambda m: [n for n, _ in m.named_parameters()] + [n for n, _ in m.named_buffers()]  # noqa: E731
    assert names(model) == names(torch_ops)  # the fused modules keep the names
    with torch.inference_mode():
        fused, unfused_out = model(ids).last_hidden_state, torch_ops(ids).last_hidden_state
    # C vs torch rounding can flip an int8 rounding, no more: far inside int8's own error
    assert (fused - unfused_out).abs().max() <= 0.25 * (unfused_out - fp32).abs().max() + 1e-5
    assert (fused - fp32).abs().mean() <= 1.05 * (unfused_out - fp32).abs().mean()


def test_look_alikes_and_unquantized_modules_are_left_alone(tiny_llama_dir, c_passes):
    class GemmaLikeRMSNorm(nn.Module):  # Gemma's norm scales by 1 + weight
        def __init__(self, n):
            super().__init__()
            self.weight, self.variance_epsilon = nn.Parameter(torch.randn(n)), 1e-6

        def forward(self, x):
            return (1 + self.weight) * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)

    model = _llama(tiny_llama_dir)
    model.layers[0].input_layernorm = GemmaLikeRMSNorm(32)
    model.layers[1].mlp.act_fn = nn.GELU()
    quantize_int8(model, keep={id(model.layers[2].mlp.down_proj)})
    assert isinstance(model.layers[0].input_layernorm, GemmaLikeRMSNorm)
    assert type(model.layers[1].mlp).__name__ == "LlamaMLP"  # GELU: not this activation
    assert type(model.layers[2].mlp).__name__ == "LlamaMLP"  # one of its layers kept fp32
    assert isinstance(model.layers[0].mlp, FusedGatedMLP) and isinstance(model.layers[1].input_layernorm, FusedRMSNorm)


def test_feature_cache_copy_fuses_only_the_frozen_blocks(tiny_llama_dir, c_passes):
    clf, _, _ = build_classifier(str(tiny_llama_dir), {0: "a", 1: "b"}, 1, seed=0)
    copy = int8_prefix_copy(clf, "int_mm")
    frozen = copy.frozen_blocks()
    assert frozen and all(isinstance(b.mlp, FusedGatedMLP) for b in frozen)
    top = list(copy.backbone.layers)[len(frozen):]
    assert top and not any(isinstance(m, (FusedGatedMLP, FusedRMSNorm)) for b in top for m in b.modules())
    assert not any(isinstance(m, (FusedGatedMLP, FusedRMSNorm)) for m in clf.modules())  # the network untouched


def test_fused_norm_keeps_torch_ops_for_gradients_and_other_dtypes(tiny_llama_dir, c_passes):
    norm = _llama(tiny_llama_dir).norm
    fused = FusedRMSNorm(norm, c_passes)
    x = torch.randn(2, 5, 32, requires_grad=True)
    fused(x).sum().backward()
    want = x.grad.clone()
    x.grad = None
    norm(x).sum().backward()
    assert torch.allclose(want, x.grad) and fused.weight is norm.weight
    xb = torch.randn(2, 5, 32).bfloat16()
    with torch.inference_mode():
        assert torch.equal(fused(xb), norm(xb))


def test_nothing_is_fused_on_the_torch_passes(tiny_llama_dir, monkeypatch):
    monkeypatch.setenv(int8_passes.ENV, "torch")
    model = _llama(tiny_llama_dir)
    quantize_int8(model)
    assert not any(isinstance(m, (FusedGatedMLP, FusedRMSNorm)) for m in model.modules())
    assert fuse_elementwise(model, {id(m) for m in model.modules() if isinstance(m, Int8Linear)}) == 0
