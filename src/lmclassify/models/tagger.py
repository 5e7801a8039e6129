"""The token-classification network: a transformers ``*ForTokenClassification`` model
whose forward we drive ourselves (so it can start from cached states at the freeze
boundary), a head per token (transformers' own ``classifier`` Linear, or our MLP), and
an optional CRF over the per-word scores.

Keeping the HF model object means saving is ``save_pretrained``; the CRF's transitions
and an MLP head are the only things stored beside it.
"""
from __future__ import annotations

from typing import Optional, Union

import torch
from torch import nn

from .crf import CRF
from .frozen_prefix import FrozenPrefixModel, find_linear_head


class TokenTagger(FrozenPrefixModel):
    """Backbone -> dropout -> head per token -> (B, T, C) emission scores.

    >>> tagger = TokenTagger(hf_token_model, train_layers="all", crf=True)   # doctest: +SKIP
    >>> tagger(input_ids=ids, attention_mask=mask).shape                    # (B, T, num_tags)
    """

    def __init__(self, hf_model: nn.Module, train_layers: Union[int, str] = "all", crf: bool = False,
                 head: Optional[nn.Module] = None):
        super().__init__(hf_model, train_layers)
        self.own_head = head is not None
        self.head = head if head is not None else find_linear_head(hf_model)
        drop = getattr(hf_model, "dropout", None)
        self.dropout = drop if isinstance(drop, nn.Dropout) else nn.Identity()
        self.crf = CRF(self.head_outputs) if crf else None
        never = [find_linear_head(hf_model)] if self.own_head else []
        self._freeze(top=[self.head] + ([self.crf] if self.crf is not None else []), never=never)

    @property
    def head_outputs(self) -> int:
        return self.hf.config.num_labels

    def forward(self, input_ids: Optional[torch.Tensor] = None, attention_mask: Optional[torch.Tensor] = None,
                hidden: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Emission scores (B, T, C) from token ids or from cached boundary states."""
        if hidden is not None:
            h = self.backbone.run_from(self.split, hidden, attention_mask)
        else:
            h = self.backbone.run(input_ids, attention_mask)
        return self.head(self.dropout(h))  # (B, T, H) -> (B, T, C)
