"""Device choices in one place: bf16 autocast on GPUs, and on a CPU only for a model
quantized to bf16 (``models/bf16.py``: CPUs without native bf16 run it far slower than
fp32, ~400x on an AMD EPYC), fused AdamW on both."""
from __future__ import annotations

import contextlib

import torch


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast(device: torch.device, cpu_bf16: bool = False):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if cpu_bf16:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()
