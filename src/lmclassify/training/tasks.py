"""Tasks own what differs between problem shapes: label encoding, loss, decoding,
metrics, and what is tuned after training. The training loop and the estimator ask the
task and never branch on task names themselves.

Three shapes, named like transformers' ``problem_type``: ``single`` (one class per text,
SingleLabel here), ``multi`` (several labels per text, ``multi_label.py``) and
``regression`` (a number per text, ``regression.py``). Text pairs are not a task: any
shape can read pairs (MRPC is single-label, STS-B regression).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data.labels import LabelMap
from ..errors import LmClassifyError
from ..evaluation.metrics import classification_metrics

TASKS = ("single", "multi", "regression")


class Task:
    """What every task provides; subclasses fill it in.

    ``labels`` is the class map (None for regression); ``record_keys`` are the scalar
    metrics the loop logs per evaluation (as ``val_<key>``) and that ``--monitor`` may
    name; ``lower_is_better`` says which of them early stopping minimises;
    ``running_metric`` is the training-batch statistic counted by ``correct`` (None: none).
    """

    kind = ""
    name = ""  # transformers' problem_type
    main_metric = "accuracy"  # the number to plot and print first
    labels: Optional[LabelMap] = None
    running_metric: Optional[str] = "accuracy"
    lower_is_better = frozenset({"loss", "mse", "mae"})

    @property
    def record_keys(self) -> tuple[str, ...]:
        raise NotImplementedError

    def monitor_names(self) -> list[str]:
        return [f"val_{k}" for k in self.record_keys]

    def higher_is_better(self, monitor: str) -> bool:
        return monitor.removeprefix("val_") not in self.lower_is_better

    def check_monitor(self, monitor: str) -> None:
        if monitor not in self.monitor_names():
            raise LmClassifyError(f"--monitor {monitor} is not a metric of a {self.kind} task; "
                                  f"use one of {', '.join(self.monitor_names())}")

    @property
    def classes(self) -> list:
        return [] if self.labels is None else list(self.labels.classes)

    def id2label(self) -> dict[int, str]:
        return self.labels.id2label()

    def encode_labels(self, labels: Sequence) -> list:
        """Raw labels -> what the loss wants per example (collated by torch.tensor)."""
        raise NotImplementedError

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def correct(self, logits: torch.Tensor, labels: torch.Tensor) -> int:
        return 0

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        raise LmClassifyError(f"a {self.kind} model has no class probabilities; use predict()")

    def predict(self, logits: torch.Tensor) -> list:
        """Predictions as the user wrote labels (class names, label lists, numbers)."""
        raise NotImplementedError

    def records(self, logits: torch.Tensor) -> list[dict]:
        """One JSON-ready dict per text for ``lmclassify predict``."""
        raise NotImplementedError

    def metrics(self, logits: torch.Tensor, labels: Sequence) -> dict:
        raise NotImplementedError

    def calibrate(self, logits: torch.Tensor, labels: Sequence) -> Optional[dict]:
        """Tune decision rules on validation logits after training (multi-label thresholds);
        returns what was tuned, for the report, or None when the task has nothing to tune."""
        return None

    def state(self) -> dict:
        """Everything beyond the label map needed to rebuild this task (saved with the model)."""
        return {}

    def compatibility_notes(self) -> list[str]:
        """What plain transformers, reading only config.json and the weights, would miss."""
        return []


# ---- class weights ---------------------------------------------------------------------

def parse_class_weights(spec: Optional[str], counts: np.ndarray, classes: Sequence) -> Optional[torch.Tensor]:
    """``--class-weights``: None, ``auto`` (n / (C * n_c): every class carries the same
    total weight, scikit-learn's "balanced") or one comma-separated weight per class in
    class order. ``counts`` are the training examples per class."""
    if spec is None or spec == "none":
        return None
    C = len(classes)
    if spec == "auto":
        return torch.tensor(counts.sum() / (C * np.maximum(counts, 1)), dtype=torch.float32)
    try:
        w = [float(x) for x in str(spec).split(",")]
    except ValueError:
        raise LmClassifyError(f"--class-weights must be 'auto' or comma-separated numbers, not {spec!r}") from None
    if len(w) != C:
        raise LmClassifyError(f"--class-weights has {len(w)} weights but there are {C} classes "
                              f"({', '.join(map(str, classes))}), in that order")
    if any(not np.isfinite(x) or x < 0 for x in w) or not any(w):
        raise LmClassifyError(f"--class-weights must be non-negative numbers, not all zero: {spec!r}")
    return torch.tensor(w, dtype=torch.float32)


# ---- single label ----------------------------------------------------------------------

class SingleLabel(Task):
    """One class per text: cross-entropy, argmax, accuracy/precision/recall/F1."""

    kind = "single"
    name = "single_label_classification"

    def __init__(self, label_names: Sequence[str], class_weights: Optional[torch.Tensor] = None,
                 positive_label: Optional[int] = None, labels: Optional[LabelMap] = None):
        self.label_names = [str(n) for n in label_names]
        self.class_weights = class_weights
        self.positive_label = positive_label
        self.labels = labels or LabelMap(self.label_names)

    @classmethod
    def fit(cls, labels: Sequence, class_weights: Optional[str] = None, positive_label: Any = None) -> "SingleLabel":
        lm = LabelMap.fit(labels)
        counts = np.bincount(lm.encode(labels), minlength=len(lm))
        pos = lm.encode([positive_label])[0] if positive_label is not None and len(lm) == 2 else None
        return cls(lm.id2label().values(), parse_class_weights(class_weights, counts, lm.classes), pos, lm)

    @property
    def record_keys(self) -> tuple[str, ...]:
        return ("loss", "accuracy", "f1_macro") + (("f1",) if len(self.label_names) == 2 else ())

    def encode_labels(self, labels: Sequence) -> list[int]:
        return self.labels.encode(labels)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        w = None if self.class_weights is None else self.class_weights.to(logits.device)
        return F.cross_entropy(logits.float(), labels, weight=w)

    def correct(self, logits: torch.Tensor, labels: torch.Tensor) -> int:
        return int((logits.argmax(-1) == labels).sum())

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.float().softmax(-1)

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


# ---- choosing a task -------------------------------------------------------------------

def _number(v: Any) -> Optional[float]:
    """A finite float from a number or numeric string; None otherwise (also for "nan", "inf")."""
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        return None
    try:
        x = float(v)
    except ValueError:
        return None
    return x if np.isfinite(x) else None


def _float_written(y: Any) -> bool:
    """A float value, or a number written as one ("3.8", "5.000", "1e-3"), not an integer."""
    if isinstance(y, float):
        return True
    if isinstance(y, str):
        try:
            int(y)
        except ValueError:
            return _number(y) is not None
    return False


def infer_task(labels: Sequence, separator: str = ",") -> str:
    """The task shape the training labels imply, like transformers' ``problem_type``:
    lists (or strings holding ``separator``) -> multi; all numbers, some written as floats
    ("3.8", "5.000", 0.5) -> regression; anything else (names, integer ids) -> single.
    Integer-only targets such as 1-5 stars stay classes; ``--task regression`` says otherwise."""
    values = list(labels)
    if any(isinstance(y, (list, tuple)) for y in values):
        return "multi"
    if values and all(_number(y) is not None for y in values) and any(_float_written(y) for y in values):
        return "regression"
    if separator and any(isinstance(y, str) and separator in y for y in values):
        return "multi"
    return "single"


def make_task(kind: str, labels: Sequence, *, separator: str = ",", class_weights: Optional[str] = None,
              positive_label: Any = None) -> Task:
    """Fit the task of shape ``kind`` ('auto' infers it) on the training labels."""
    from .multi_label import MultiLabel
    from .regression import Regression

    kind = infer_task(labels, separator) if kind == "auto" else kind
    if kind == "single":
        return SingleLabel.fit(labels, class_weights, positive_label)
    if kind == "multi":
        return MultiLabel.fit(labels, separator=separator, class_weights=class_weights)
    if kind == "regression":
        if class_weights not in (None, "none"):
            raise LmClassifyError("--class-weights applies to classification; a regression task has no classes")
        return Regression.fit(labels)
    raise LmClassifyError(f"unknown task {kind!r}; use one of auto, {', '.join(TASKS)}")


def task_from_saved(name: str, labels: Optional[dict], state: dict, positive_label: Any = None) -> Task:
    """Rebuild a saved task from ``lmclassify.json`` (``task``, ``labels``, ``task_state``)."""
    from .multi_label import MultiLabel
    from .regression import Regression

    if name == Regression.name:
        return Regression(**state)
    lm = LabelMap.from_dict(labels)
    if name == MultiLabel.name:
        return MultiLabel(lm, **state)
    if name == SingleLabel.name:
        pos = lm.encode([positive_label])[0] if positive_label is not None and len(lm) == 2 else None
        w = state.get("class_weights")
        return SingleLabel(lm.id2label().values(), None if w is None else torch.tensor(w), pos, lm)
    raise LmClassifyError(f"saved model has an unknown task {name!r}; is it from a newer lmclassify?")
