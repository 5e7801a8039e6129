"""What the sequence and token networks share: a transformers model whose blocks below a
split point are frozen and kept in eval mode. A frozen prefix without dropout is a fixed
function, which is what lets the trainer cache its outputs (training/feature_cache.py).
"""
from __future__ import annotations

import copy
import itertools
from typing import Iterable, Optional, Union

import torch
from torch import nn

from .backbone import Backbone


def split_point(train_layers: Union[int, str], n_layers: int) -> int:
    """Number of frozen blocks at the bottom: everything below it can be cached."""
    if train_layers == "all":
        return 0
    if train_layers == "head":
        return n_layers
    return max(n_layers - int(train_layers), 0)


def find_linear_head(hf_model: nn.Module) -> nn.Linear:
    """transformers' task head: ``score`` on decoders, ``classifier`` on encoders."""
    for name in ("score", "classifier"):
        m = getattr(hf_model, name, None)
        if isinstance(m, nn.Linear):
            return m
    raise RuntimeError(f"{type(hf_model).__name__} has no linear 'score' or 'classifier' head")


def sharing_copy(model: nn.Module, replace: Optional[dict[int, torch.Tensor]] = None) -> nn.Module:
    """A copy of ``model`` whose modules are new but whose parameters and buffers are the
    very same tensors (``replace``: id(tensor) -> the tensor the copy holds instead). What a
    faster copy of the frozen blocks (int8, bf16) is built on: swapping its modules leaves
    ``model`` as it was, without a second copy of ~0.5 GB of weights."""
    memo: dict = {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
    memo.update(replace or {})
    return copy.deepcopy(model, memo)


class FrozenPrefixModel(nn.Module):
    """Base of ``SequenceClassifier`` and ``TokenTagger``: owns the HF model, its backbone
    view and the freeze boundary."""

    def __init__(self, hf_model: nn.Module, train_layers: Union[int, str]):
        super().__init__()
        self.hf = hf_model
        self.backbone = Backbone(hf_model.base_model)
        self.train_layers = train_layers
        self.split = split_point(train_layers, self.backbone.n_layers)

    def _freeze(self, top: Iterable[nn.Module], never: Iterable[nn.Module] = ()) -> None:
        """Train everything for ``all``; otherwise ``top`` (head, pooler, CRF) plus, unless
        ``head``, the blocks from the split point up and the final norm. ``never`` stays
        frozen whatever the setting (modules kept only so the checkpoint stays valid)."""
        everything = self.train_layers == "all"
        for p in self.parameters():
            p.requires_grad_(everything)
        if not everything:
            for m in list(top) + self.trained_backbone():
                for p in m.parameters():
                    p.requires_grad_(True)
        for m in never:
            for p in m.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> "FrozenPrefixModel":
        """Frozen blocks stay in eval mode (no dropout), so their outputs can be cached."""
        super().train(mode)
        if mode and self.train_layers != "all":
            self.backbone.base.eval()
            for m in list(self.backbone.layers)[self.split:]:
                m.train()
        return self

    def parameter_counts(self) -> tuple[int, int]:
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return trainable, sum(p.numel() for p in self.parameters())

    def trained_backbone(self) -> list[nn.Module]:
        """The backbone modules a run trains (unless ``all``): the blocks from the split
        point up and the final norm; none for ``head``."""
        if self.train_layers == "head":
            return []
        norm = [self.backbone.final_norm] if self.backbone.final_norm is not None else []
        return list(self.backbone.layers)[self.split:] + norm

    def frozen_blocks(self) -> list[nn.Module]:
        """The blocks below the split point: what the feature cache computes."""
        return list(self.backbone.layers)[:self.split]

    @property
    def cacheable(self) -> bool:
        return self.split > 0

    @torch.no_grad()  # not inference_mode: cached states feed autograd later
    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 prefix: Optional[object] = None) -> torch.Tensor:
        """Hidden states at the freeze boundary, (B, T, H); inputs to the trainable part.
        ``prefix``: a shared prefix's keys/values (``Backbone.prefix_cache``), not in ``input_ids``."""
        return self.backbone.run_to(self.split, input_ids, attention_mask, prefix)
