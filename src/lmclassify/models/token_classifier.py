"""The token-classification network: a transformers ``*ForTokenClassification`` model
whose forward we drive ourselves (so it can start from cached states at the freeze
boundary), plus an optional CRF over the per-word scores.

Keeping the HF model object means saving is ``save_pretrained`` and the directory loads in
plain transformers; the CRF's transitions are the only thing stored beside it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from ..errors import LmClassifyError
from .crf import CRF
from .frozen_prefix import FrozenPrefixModel, find_linear_head


class TokenTagger(FrozenPrefixModel):
    """Backbone -> dropout -> linear head per token -> (B, T, C) emission scores.

    >>> tagger = TokenTagger(hf_token_model, train_layers="all", crf=True)   # doctest: +SKIP
    >>> tagger(input_ids=ids, attention_mask=mask).shape                    # (B, T, num_tags)
    """

    def __init__(self, hf_model: nn.Module, train_layers: Union[int, str] = "all", crf: bool = False):
        super().__init__(hf_model, train_layers)
        self.head = find_linear_head(hf_model)
        drop = getattr(hf_model, "dropout", None)
        self.dropout = drop if isinstance(drop, nn.Dropout) else nn.Identity()
        self.crf = CRF(self.head.out_features) if crf else None
        # The training loop stacks evaluation outputs of every example into one tensor, so
        # while it runs every output is padded to one length (see training/token_task.py).
        self.pad_to: Optional[int] = None
        self._freeze(top=[self.head] + ([self.crf] if self.crf is not None else []))

    def forward(self, input_ids: Optional[torch.Tensor] = None, attention_mask: Optional[torch.Tensor] = None,
                hidden: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Emission scores (B, T, C) from token ids or from cached boundary states."""
        if hidden is not None:
            h = self.backbone.run_from(self.split, hidden, attention_mask)
        else:
            h = self.backbone.run(input_ids, attention_mask)
        out = self.head(self.dropout(h))  # (B, T, H) -> (B, T, C)
        if self.pad_to is not None and out.shape[1] < self.pad_to:
            out = nn.functional.pad(out, (0, 0, 0, self.pad_to - out.shape[1]))
        return out


def load_word_tokenizer(path: Union[str, Path]):
    """A fast tokenizer that reads pre-split words as running text: byte-level BPE
    (GPT-2, RoBERTa) must put a space before every word, or 'world' in ['Hello', 'world']
    becomes a different token than in 'Hello world'."""
    from transformers import AutoTokenizer

    from .load import load_tokenizer

    tok = load_tokenizer(path)
    if not tok.is_fast:
        raise LmClassifyError(f"{path}: token classification needs a fast tokenizer (tokenizer.json) to map "
                              f"sub-word pieces to words")
    if getattr(tok, "add_prefix_space", None) is False:
        tok = AutoTokenizer.from_pretrained(path, add_prefix_space=True)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        tok.padding_side = "right"
    return tok


def build_token_model(model: str, tags: list[str], train_layers: Union[int, str] = "all", crf: bool = False,
                      seed: Optional[int] = None) -> tuple[TokenTagger, object, Path]:
    """Load ``model`` with a fresh per-token head for ``tags`` (seeded initialisation)."""
    from transformers import AutoConfig, AutoModelForTokenClassification

    from .resolve import resolve_model

    path = resolve_model(model)
    tok = load_word_tokenizer(path)
    config = AutoConfig.from_pretrained(path)
    config.num_labels = len(tags)
    config.id2label = dict(enumerate(tags))
    config.label2id = {t: i for i, t in enumerate(tags)}
    config.pad_token_id = tok.pad_token_id
    if seed is not None:
        torch.manual_seed(seed)
    try:
        hf = AutoModelForTokenClassification.from_pretrained(path, config=config, dtype=torch.float32)
    except ValueError as e:
        raise LmClassifyError(f"{model}: transformers has no token-classification model for it ({e})") from e
    return TokenTagger(hf, train_layers, crf), tok, path
