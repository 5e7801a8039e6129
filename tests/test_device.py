"""Device choices: the CPU never runs bf16 (it is ~400x slower than fp32 here), GPUs do."""
import warnings

import torch
from torch import nn

from lmclassify.config import TrainConfig
from lmclassify.training.device import autocast, pick_device
from lmclassify.training.loop import _optimizer


def test_auto_device_follows_cuda_availability(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto").type == "cuda"
    assert pick_device("cpu").type == "cpu"


def test_cpu_matmuls_stay_fp32_and_gpus_get_bf16_autocast():
    a = torch.randn(4, 8)
    with autocast(torch.device("cpu")):
        assert (a @ a.T).dtype == torch.float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CUDA is not available" on a CPU-only build
        ctx = autocast(torch.device("cuda"))
    assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch.bfloat16


def test_adamw_skips_decay_on_biases_and_norms_and_is_fused():
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    model[0].weight.requires_grad_(False)  # frozen: not handed to the optimizer
    opt = _optimizer(model, TrainConfig(weight_decay=0.1, learning_rate=1e-3), torch.device("cpu"))
    decay, no_decay = opt.param_groups
    assert [p.shape for p in decay["params"]] == [torch.Size([2, 4])] and decay["weight_decay"] == 0.1
    assert len(no_decay["params"]) == 4 and no_decay["weight_decay"] == 0.0  # 2 biases + norm weight/bias
    assert opt.defaults["fused"]  # one kernel per step on a CPU too (torch >= 2.4)
    before = [p.detach().clone() for p in model.parameters()]
    model(torch.randn(3, 4)).sum().backward()
    opt.step()  # and it runs here
    assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters()) if p.requires_grad)
