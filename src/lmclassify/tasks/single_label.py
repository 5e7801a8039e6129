"""Single-label classification: one class per text (cross-entropy, argmax,
accuracy / precision / recall / F1)."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data.labels import LabelMap
from ..evaluation.metrics import classification_metrics
from .base import Task, register
from .weights import parse_class_weights


@register
class SingleLabel(Task):
    kind = "single"
    name = "single_label_classification"

    def __init__(self, label_names: Sequence[str], class_weights: Optional[torch.Tensor] = None,
                 positive_label: Optional[int] = None, labels: Optional[LabelMap] = None):
        self.label_names = [str(n) for n in label_names]
        self.class_weights = class_weights
        self.positive_label = positive_label
        self.labels = labels or LabelMap(self.label_names)

    @classmethod
    def fit(cls, labels: Sequence, *, separator: str = ",", class_weights: Optional[str] = None,
            positive_label: Any = None) -> "SingleLabel":
        lm = LabelMap.fit(labels)
        counts = np.bincount(lm.encode(labels), minlength=len(lm))
        return cls(lm.id2label().values(), parse_class_weights(class_weights, counts, lm.classes),
                   _positive_id(lm, positive_label), lm)

    @classmethod
    def from_saved(cls, labels: Optional[dict], state: dict, positive_label: Any = None) -> "SingleLabel":
        lm = LabelMap.from_dict(labels)
        w = state.get("class_weights")
        return cls(lm.id2label().values(), None if w is None else torch.tensor(w), _positive_id(lm, positive_label), lm)

    @property
    def record_keys(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("loss", "accuracy", "f1_macro") + (("f1",) if len(self.label_names) == 2 else ())

    def encode_labels(self, labels: Sequence, where=None) -> list[int]:
        return self.labels.encode(labels)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        w = None if self.class_weights is None else self.class_weights.to(logits.device)
        return F.cross_entropy(logits.float(), labels, weight=w)

    def correct(self, logits: torch.Tensor, labels: torch.Tensor) -> int:
        return int((logits.argmax(-1) == labels).sum())

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.float().softmax(-1)

    def margins(self, logits: torch.Tensor) -> Optional[torch.Tensor]:
        """The best class's logit minus the runner-up's."""
        if logits.ndim != 2 or logits.shape[-1] < 2:
            return None
        top = logits.float().topk(2, dim=-1).values
        return top[:, 0] - top[:, 1]

    def decode(self, logits: torch.Tensor) -> list[int]:
        return logits.argmax(-1).tolist()

    def predict(self, logits: torch.Tensor) -> list:
        return self.labels.decode(self.decode(logits))

    def records(self, logits: torch.Tensor) -> list[dict]:
        probs = self.probabilities(logits).numpy()
        names, classes = self.label_names, self.labels.classes
        return [{"label": classes[int(p.argmax())], "score": float(p.max()),
                 "probabilities": {n: float(x) for n, x in zip(names, p)}} for p in probs]

    def metrics(self, logits: torch.Tensor, labels: Sequence[int]) -> dict:
        loss = float(self.loss(logits, torch.as_tensor(list(labels))))
        return classification_metrics(list(labels), self.decode(logits), self.label_names,
                                      loss=loss, positive_label=self.positive_label)

    def state(self) -> dict:
        return {} if self.class_weights is None else {"class_weights": self.class_weights.tolist()}


def _positive_id(lm: LabelMap, positive_label: Any) -> Optional[int]:
    return lm.encode([positive_label])[0] if positive_label is not None and len(lm) == 2 else None
