"""Contrastive pair fine-tuning of the encoder (SetFit's first phase), run by the one loop.

With 8-64 labelled texts per class, cross-entropy fine-tuning has too few examples to
move a whole encoder reliably; pairs multiply them. Every iteration gives each text one
partner of its own class (target 1) and one of another class (target 0), and the encoder
learns to put cos(u, v) of the pooled embeddings on the target: sentence-transformers'
``CosineSimilarityLoss`` (MSE between the cosine and 1/0), as SetFit does. R iterations
over N texts make 2 R N pairs.

The pairs are an ``Encoded`` of siamese pairs (``input_ids`` / ``pair_ids``, cached
boundary states reused when the lower blocks are frozen) and the "task" is the cosine
loss, so ``training/loop.py`` runs them unchanged: schedule, clipping, progress lines,
checkpoints and resume come with it.

>>> pairs = make_pairs([0, 0, 1, 1], iterations=1, seed=0)
>>> len(pairs), sorted(t for _, _, t in pairs)
(8, [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import TrainConfig
from ..data.batching import Encoded
from ..errors import LmClassifyError
from .loop import FitResult, fit


def make_pairs(labels: Sequence[int], iterations: int, seed: int) -> list[tuple[int, int, float]]:
    """(i, j, target) index pairs: per iteration and text, one same-class partner (another
    text where the class has one) with target 1.0 and one other-class partner with 0.0;
    shuffled, reproducible from ``seed``."""
    y = np.asarray(labels)
    classes = np.unique(y)
    if len(classes) < 2:
        raise LmClassifyError("--method setfit needs at least two classes in the training labels")
    members = {c: np.flatnonzero(y == c) for c in classes}
    others = {c: np.flatnonzero(y != c) for c in classes}
    rng = np.random.default_rng(seed)
    pairs: list[tuple[int, int, float]] = []
    for _ in range(iterations):
        for i, c in enumerate(y):
            same = members[c][members[c] != i] if len(members[c]) > 1 else members[c]
            pairs.append((i, int(rng.choice(same)), 1.0))
            pairs.append((i, int(rng.choice(others[c])), 0.0))
    order = rng.permutation(len(pairs))
    return [pairs[k] for k in order]


def pair_encoding(enc: Encoded, pairs: list[tuple[int, int, float]]) -> Encoded:
    """The pairs as a siamese ``Encoded`` over ``enc``'s token ids (and cached states:
    views, not copies); labels are the cosine targets."""
    a, b = [i for i, _, _ in pairs], [j for _, j, _ in pairs]
    feats = enc.features
    return Encoded([enc.input_ids[i] for i in a], [t for _, _, t in pairs],
                   features=None if feats is None else [feats[i] for i in a],
                   pair_ids=[enc.input_ids[j] for j in b],
                   pair_features=None if feats is None else [feats[j] for j in b])


class CosinePairs(nn.Module):
    """Wraps a ``SequenceClassifier``: cos(u, v) (B,) of the two texts' pooled embeddings.
    Parameter names keep the ``net.`` prefix, so a checkpoint names the classifier's own."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, input_ids=None, attention_mask=None, hidden=None, input_ids_b=None,
                attention_mask_b=None, hidden_b=None) -> torch.Tensor:
        u = self.net.pooled(input_ids, attention_mask, hidden)  # (B, H)
        v = self.net.pooled(input_ids_b, attention_mask_b, hidden_b)  # (B, H)
        return F.cosine_similarity(u, v, dim=-1)  # (B,)


class CosineLoss:
    """The loop's task seam for pairs: MSE between cos(u, v) and the 1/0 target; no
    per-batch metric and nothing to evaluate (few-label runs have no pair validation)."""

    running_metric = None
    record_keys: tuple = ()

    def prepare_batch(self, batch: dict, enc: Encoded, idx, epoch) -> dict:
        return batch

    def loss(self, cosine: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(cosine.float(), target.float())

    def higher_is_better(self, monitor: str) -> bool:
        return False


def train_contrastive(model: nn.Module, train: Encoded, cfg: TrainConfig, pad_id: int, device: torch.device,
                      log=None, **loop) -> FitResult:
    """Tune ``model``'s trainable blocks on ``cfg.pair_iterations`` rounds of pairs of
    ``train`` (``cfg.epochs`` passes, ``cfg.batch_size`` pairs per step); the head is left
    alone (the logistic regression fitted next replaces it)."""
    pairs = pair_encoding(train, make_pairs(train.labels, cfg.pair_iterations, cfg.seed))
    head = [p for p in model.head.parameters() if p.requires_grad]
    for p in head:  # no gradient reaches it; keep it out of the optimiser and checkpoints
        p.requires_grad_(False)
    try:
        return fit(CosinePairs(model), CosineLoss(), pairs, None, cfg, pad_id, device, log=log, **loop)
    finally:
        for p in head:
            p.requires_grad_(True)

