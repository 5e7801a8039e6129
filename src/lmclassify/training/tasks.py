"""Tasks own what differs between problem shapes: loss, decoding and metrics.
The training loop asks the task and never branches on task names itself."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from ..evaluation.metrics import classification_metrics


class SingleLabel:
    """One class per text: cross-entropy, argmax, accuracy/precision/recall/F1."""

    name = "single_label_classification"
    monitor_higher_is_better = {"val_loss": False}

    def __init__(self, label_names: Sequence[str], class_weights: Optional[torch.Tensor] = None,
                 positive_label: Optional[int] = None):
        self.label_names = list(label_names)
        self.class_weights = class_weights
        self.positive_label = positive_label

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        w = None if self.class_weights is None else self.class_weights.to(logits.device)
        return F.cross_entropy(logits.float(), labels, weight=w)

    def correct(self, logits: torch.Tensor, labels: torch.Tensor) -> int:
        return int((logits.argmax(-1) == labels).sum())

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.float().softmax(-1)

    def decode(self, logits: torch.Tensor) -> list[int]:
        return logits.argmax(-1).tolist()

    def metrics(self, logits: torch.Tensor, labels: Sequence[int]) -> dict:
        loss = float(self.loss(logits, torch.as_tensor(list(labels))))
        return classification_metrics(list(labels), self.decode(logits), self.label_names,
                                      loss=loss, positive_label=self.positive_label)
