"""Regression: one number per text (STS-B similarity, 0-5). Mean squared error on
standardised targets: the head starts near zero output and N(0, 0.02) weights, so
asking it for (y - mean) / std rather than y itself keeps the first steps' gradients
on the scale of a classification loss, whatever units the targets are in. Predictions
are mapped back to the original units; mean and std are saved with the model."""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from ..errors import LmClassifyError
from ..evaluation.metrics import regression_metrics
from .base import Task, register
from ..data.numbers import number


def to_targets(labels: Sequence) -> list[float]:
    """Floats, or one error naming the first value that is not a finite number."""
    out = []
    for i, y in enumerate(labels):
        v = number(y)
        if v is None or not math.isfinite(v):
            raise LmClassifyError(f"regression targets must be numbers; row {i + 1} has {y!r}. "
                                  f"Fix the data, or pass --task single if these are class names")
        out.append(v)
    return out


@register
class Regression(Task):
    kind = "regression"
    name = "regression"
    main_metric = "pearson"
    running_metric = None

    def __init__(self, mean: float = 0.0, std: float = 1.0):
        self.mean, self.std = float(mean), float(std)

    @classmethod
    def fit(cls, labels: Sequence, *, separator: str = ",", class_weights=None, positive_label=None) -> "Regression":
        if class_weights not in (None, "none"):
            raise LmClassifyError("--class-weights applies to classification; a regression task has no classes")
        y = torch.tensor(to_targets(labels), dtype=torch.float64)
        if len(y) < 2:
            raise LmClassifyError("regression needs at least two training targets")
        std = float(y.std())
        return cls(float(y.mean()), std if std > 0 else 1.0)

    record_keys = ("loss", "mse", "pearson", "spearman")
    report_columns = ("loss", "pearson", "spearman", "mse", "mae")

    @classmethod
    def from_saved(cls, labels, state: dict, positive_label=None) -> "Regression":
        return cls(**state)

    def id2label(self) -> dict[int, str]:
        return {0: "score"}

    def encode_labels(self, labels: Sequence, where=None) -> list[float]:
        return to_targets(labels)

    def _values(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.float()[:, 0] * self.std + self.mean  # (B,) in the targets' units

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(logits.float()[:, 0], (labels.float() - self.mean) / self.std)

    def predict(self, logits: torch.Tensor) -> list[float]:
        return self._values(logits).tolist()

    def records(self, logits: torch.Tensor) -> list[dict]:
        return [{"value": v} for v in self.predict(logits)]

    def metrics(self, logits: torch.Tensor, labels: Sequence[float]) -> dict:
        y = torch.as_tensor(list(labels), dtype=torch.float32)
        return regression_metrics(y.tolist(), self.predict(logits), loss=float(self.loss(logits, y)))

    def compatibility_notes(self) -> list[str]:
        return [f"regression outputs are standardised: plain transformers returns (y - {self.mean:.4g}) / "
                f"{self.std:.4g}; lmclassify maps them back to the targets' units"]

    def state(self) -> dict:
        return {"mean": self.mean, "std": self.std}
