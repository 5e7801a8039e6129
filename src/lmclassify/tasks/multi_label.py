"""Multi-label: any number of labels per text (GoEmotions: 28 emotions, ~16 % of rows
carry two or more). One sigmoid per label, binary cross-entropy, and a decision
threshold per label tuned on validation after training and saved with the model: rare
labels rarely clear 0.5, and a per-label threshold is what lifts macro F1."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data.labels import LabelMap
from ..errors import LmClassifyError
from ..evaluation.metrics import multilabel_metrics
from .base import Task, register
from .weights import parse_class_weights

THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.025), 3)


def split_labels(value, separator: str) -> list:
    """One row's labels: a list as given, or a string cut at ``separator`` (blank parts dropped)."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        return [p.strip() for p in value.split(separator) if p.strip()] if separator else [value.strip()]
    return [value]


@register
class MultiLabel(Task):
    kind = "multi"
    name = "multi_label_classification"
    main_metric = "f1_macro"

    def __init__(self, labels: LabelMap, thresholds: Optional[Sequence[float]] = None,
                 pos_weight: Optional[Sequence[float]] = None, separator: str = ","):
        self.labels = labels
        self.separator = separator
        C = len(labels)
        self.thresholds = np.full(C, 0.5) if thresholds is None else np.asarray(thresholds, dtype=float)
        self.pos_weight = None if pos_weight is None else torch.as_tensor(pos_weight, dtype=torch.float32)
        if len(self.thresholds) != C:
            raise LmClassifyError(f"saved thresholds ({len(self.thresholds)}) do not match the {C} labels")

    @classmethod
    def fit(cls, labels: Sequence, *, separator: str = ",", class_weights: Optional[str] = None,
            positive_label=None) -> "MultiLabel":
        rows = [split_labels(y, separator) for y in labels]
        flat = [v for r in rows for v in r]
        if not flat:
            raise LmClassifyError("no labels in the training data")
        if any(isinstance(v, str) for v in flat):  # as LabelMap.fit: mixed int/str labels are all strings
            flat = [str(v) for v in flat]
        lm = LabelMap(sorted(set(flat)))  # one label is fine here: it is a yes/no question per text
        task = cls(lm, separator=separator)
        Y = np.asarray(task.encode_labels(rows))
        task.pos_weight = task._pos_weight(class_weights, Y)
        return task

    def _pos_weight(self, spec: Optional[str], Y: np.ndarray) -> Optional[torch.Tensor]:
        """``--class-weights auto``: BCE's pos_weight n_neg / n_pos per label, so a label's
        positives weigh as much as its negatives; or explicit weights, one per label."""
        if spec is None or spec == "none":
            return None
        if spec == "auto":
            pos = Y.sum(0)
            return torch.tensor((len(Y) - pos) / np.maximum(pos, 1), dtype=torch.float32)
        return parse_class_weights(spec, Y.sum(0), self.labels.classes)

    record_keys = ("loss", "accuracy", "f1_micro", "f1_macro")
    report_columns = ("loss", "accuracy", "f1_micro", "f1_macro", "precision_micro", "recall_micro")

    @classmethod
    def from_saved(cls, labels: Optional[dict], state: dict, positive_label=None) -> "MultiLabel":
        return cls(LabelMap.from_dict(labels), **state)

    def encode_labels(self, labels: Sequence, where=None) -> list[list[float]]:
        """Multi-hot rows (n, C); an unknown label is the LabelMap's one-line error."""
        rows = [split_labels(y, self.separator) for y in labels]
        ids = self.labels.encode([v for r in rows for v in r])
        out, k = [], 0
        for r in rows:
            hot = [0.0] * len(self.labels)
            for i in ids[k:k + len(r)]:
                hot[i] = 1.0
            k += len(r)
            out.append(hot)
        return out

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        w = None if self.pos_weight is None else self.pos_weight.to(logits.device)
        return F.binary_cross_entropy_with_logits(logits.float(), labels.float(), pos_weight=w)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.float().sigmoid()

    def decode(self, logits: torch.Tensor) -> np.ndarray:
        """(n, C) 0/1: each label above its own threshold."""
        return (self.probabilities(logits).numpy() >= self.thresholds).astype(int)

    def correct(self, logits: torch.Tensor, labels: torch.Tensor) -> int:
        """Rows whose whole label set is right (subset accuracy)."""
        hit = (self.decode(logits.detach().cpu()) == labels.cpu().numpy().astype(int)).all(1)
        return int(hit.sum())

    def predict(self, logits: torch.Tensor) -> list[list]:
        classes = self.labels.classes
        return [[classes[i] for i in np.flatnonzero(row)] for row in self.decode(logits)]

    def records(self, logits: torch.Tensor) -> list[dict]:
        names = [str(c) for c in self.labels.classes]
        probs = self.probabilities(logits).numpy()
        return [{"labels": labels, "probabilities": {n: float(x) for n, x in zip(names, p)}}
                for labels, p in zip(self.predict(logits), probs)]

    def metrics(self, logits: torch.Tensor, labels: Sequence) -> dict:
        y = torch.as_tensor(np.asarray(labels, dtype=np.float32))
        m = multilabel_metrics(y.numpy().astype(int), self.decode(logits), [str(c) for c in self.labels.classes],
                               loss=float(self.loss(logits, y)))
        return m

    def calibrate(self, logits: torch.Tensor, labels: Sequence) -> dict:
        """Per label, the threshold on THRESHOLD_GRID with the best F1 on these (validation)
        rows; a label with no positive here keeps 0.5 (nothing to tune on). Returns the
        thresholds by label name."""
        p = self.probabilities(logits).numpy()[:, :, None]  # (n, C, 1)
        y = np.asarray(labels, dtype=bool)[:, :, None]  # (n, C, 1)
        pred = p >= THRESHOLD_GRID  # (n, C, G)
        tp = (pred & y).sum(0)
        fp = (pred & ~y).sum(0)
        fn = (~pred & y).sum(0)
        f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)  # (C, G)
        # Ties (a flat F1 over a range, common with few positives) go to the threshold
        # nearest 0.5 rather than to the grid's first point.
        best = THRESHOLD_GRID[(f1 - 1e-9 * np.abs(THRESHOLD_GRID - 0.5)).argmax(1)]
        self.thresholds = np.where(y[:, :, 0].any(0), best, 0.5)
        return {"thresholds": {str(c): float(t) for c, t in zip(self.labels.classes, self.thresholds)}}

    def compatibility_notes(self) -> list[str]:
        return ["multi-label decisions use per-label thresholds tuned on validation (task_state in "
                "lmclassify.json); plain transformers gives the sigmoid probabilities only"]

    def state(self) -> dict:
        return {"thresholds": [float(t) for t in self.thresholds], "separator": self.separator,
                "pos_weight": None if self.pos_weight is None else self.pos_weight.tolist()}
