"""A language model behind the one loop's interface: transformers' own
``AutoModelForMaskedLM`` (encoders) or ``AutoModelForCausalLM`` (decoders), answering the
per-position loss of the targets its batch names instead of vocabulary-wide logits.

Why not the logits: the loop gathers every validation output before scoring it, and a
text's logits are T x V floats (30,522 per token for BERT, 49,152 for SmolLM2), so a few
thousand validation texts would need gigabytes; two floats per token (the loss and whether
it counts) are all that the validation loss and perplexity need.
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from torch import nn
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

from ..errors import LmClassifyError, first_line

IGNORE = -100  # a position without a target (not chosen for masking, padding, the last token)


class LanguageModel(nn.Module):
    """``forward(input_ids, attention_mask, targets)`` -> (B, T, 2): the cross-entropy of
    each position's target and 1.0 where there is one (0 and 0.0 elsewhere). Targets are
    aligned with the positions that predict them (a causal target is the next token)."""

    cacheable = False  # every block trains: there is no frozen prefix to cache

    def __init__(self, hf: nn.Module):
        super().__init__()
        self.hf = hf

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self.hf(input_ids=input_ids, attention_mask=attention_mask).logits  # (B, T, V)
        nll = F.cross_entropy(logits.float().transpose(1, 2), targets, ignore_index=IGNORE, reduction="none")  # (B, T)
        return torch.stack([nll, (targets != IGNORE).float()], dim=-1)  # (B, T, 2)

    def save_pretrained(self, directory: Union[str, Path]) -> None:
        """transformers' own directory (config.json, model.safetensors): what ``lmclassify
        train --model DIR`` and ``AutoModelFor*.from_pretrained`` read."""
        self.hf.save_pretrained(directory)


def load_language_model(path: Union[str, Path], causal: bool, seed: int) -> LanguageModel:
    """The model at ``path`` with its LM head (a head the checkpoint lacks, as in
    sentence-transformers encoders, starts from transformers' seeded initialisation)."""
    auto = AutoModelForCausalLM if causal else AutoModelForMaskedLM
    torch.manual_seed(seed)
    try:  # safetensors only: a pickled checkpoint can run code when loaded
        hf = auto.from_pretrained(path, dtype=torch.float32, use_safetensors=True)
    except ValueError as e:
        what = "causal" if causal else "masked"
        raise LmClassifyError(f"{path}: transformers has no {what} language model for it ({first_line(e)})") from e
    except (OSError, SafetensorError) as e:
        raise LmClassifyError(f"{path}: its safetensors weights cannot be loaded ({first_line(e)})") from e
    return LanguageModel(hf)
