"""Activation (gradient) checkpointing: keep each block's input and recompute its insides
in the backward pass. What it saves is the activations of every trained block, which is
what dominates training memory once the weights themselves are frozen (LoRA) or small.
"""
from __future__ import annotations

from torch import nn

from ..errors import LmClassifyError


def checkpoint_activations(hf: nn.Module) -> None:
    """transformers' own checkpointing on every block, non-reentrant (frozen inputs and
    peft adapters need no ``requires_grad`` tricks; module hooks stay outside the replay).
    It acts only in training mode with autograd on: evaluation and the feature cache are
    unchanged."""
    if not getattr(hf, "supports_gradient_checkpointing", False):
        raise LmClassifyError(f"--gradient-checkpointing: transformers' {type(hf).__name__} does not support it")
    kwargs = {"use_reentrant": False}
    if hasattr(hf, "activation_checkpointing_enable"):  # transformers >= 5.x's name
        hf.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
