"""The classifier network: a transformers ``*ForSequenceClassification`` model whose
forward we drive ourselves, so that it can start from cached hidden states at the
freeze boundary and read the last real token from the attention mask.

Keeping the HF model object (rather than our own copy of its parts) means saving is
``save_pretrained`` and the output directory loads in plain transformers.
"""
from __future__ import annotations

from typing import Optional, Union

import torch
from torch import nn

from . import last_token
from .frozen_prefix import FrozenPrefixModel, find_linear_head
from .heads import siamese_features
from .pooling import Pooler, last_token_index


class SequenceClassifier(FrozenPrefixModel):
    """Backbone -> pooler -> head, trainable from block ``split`` upward.

    ``head`` None uses the transformers model's own ``score``/``classifier`` Linear (so
    ``save_pretrained`` holds the whole classifier); otherwise our module, e.g. from
    ``heads.make_head``. ``siamese`` pools each text of a pair alone and feeds the head
    [u, v, |u-v|] (its input is 3 x hidden).

    >>> clf = SequenceClassifier(hf_model, pooling="last", train_layers=1)  # doctest: +SKIP
    >>> logits = clf(input_ids=ids, attention_mask=mask)                  # (B, num_labels)
    """

    def __init__(self, hf_model: nn.Module, pooling: str = "last", train_layers: Union[int, str] = 1,
                 head: Optional[nn.Module] = None, siamese: bool = False, normalize: bool = False):
        super().__init__(hf_model, train_layers)
        hidden = hf_model.config.get_text_config().hidden_size
        self.pooler = Pooler(pooling, hidden, normalize)
        self.own_head = head is not None
        self.head = head if head is not None else find_linear_head(hf_model)
        self.siamese = siamese
        # Reading only the last token lets the final block skip every other query.
        self.fast_last = (pooling == "last" and self.split < self.backbone.n_layers
                          and last_token.supported(self.backbone.base, self.backbone.layers[-1]))
        self._freeze(top=[self.head, self.pooler], never=self._unused())

    def _unused(self) -> list[nn.Module]:
        """transformers' own head (and BERT's tanh pooler) when our head replaces them:
        kept so the directory stays a valid transformers checkpoint, never trained."""
        if not self.own_head:
            return []
        out = [m for m in (getattr(self.hf, n, None) for n in ("score", "classifier")) if isinstance(m, nn.Module)]
        pooler = getattr(self.backbone.base, "pooler", None)
        return out + ([pooler] if isinstance(pooler, nn.Module) else [])

    def forward(
        self,
        input_ids: Optional[torch.Tensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        hidden: Optional[torch.Tensor] = None,
        input_ids_b: Optional[torch.Tensor] = None,
        attention_mask_b: Optional[torch.Tensor] = None,
        hidden_b: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Logits (B, num_labels) from token ids, or from cached boundary states ``hidden``;
        the ``_b`` inputs are a siamese pair's second texts."""
        x = self.pooled(input_ids, attention_mask, hidden)  # (B, H)
        if self.siamese:
            x = siamese_features(x, self.pooled(input_ids_b, attention_mask_b, hidden_b))  # (B, 3H)
        return self.head(x)  # (B, C)

    def pooled(self, input_ids: Optional[torch.Tensor], attention_mask: torch.Tensor,
               hidden: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, H): one vector per text, the head's input."""
        if self.fast_last:
            return self._last_token_features(input_ids, attention_mask, hidden)
        if hidden is not None:
            h = self.backbone.run_from(self.split, hidden, attention_mask)
        else:
            h = self.backbone.run(input_ids, attention_mask)
        return self.pooler(h, attention_mask)

    def _last_token_features(self, input_ids, attention_mask, hidden) -> torch.Tensor:
        """(B, H): all blocks but the last as usual, the last one at the last token only."""
        bb, last = self.backbone, self.backbone.n_layers - 1
        if hidden is None:
            h = bb.run_to(last, input_ids, attention_mask) if last > 0 else None
            if h is None:
                raise RuntimeError("a one-block model has no boundary to start from")
        else:
            h = bb.run_between(self.split, last, hidden, attention_mask)
        idx = last_token_index(attention_mask)
        out = last_token.last_block_last_token(bb.base, bb.layers[last], h, attention_mask, idx)
        return bb.final_norm(out) if bb.final_norm is not None else out
