"""The Task seam: everything that differs between problem shapes (label encoding, loss,
decoding, metrics, what is tuned after training, what is saved) behind one base class.

The loop, the estimators, the report and the artifacts talk to a ``Task`` and never
branch on task names. Each concrete task registers itself under its saved ``name``
(transformers' ``problem_type`` where one exists), so a saved model's task comes back
through one registry (``tasks/registry.py``).
"""
from __future__ import annotations

from typing import Any, ClassVar, Optional, Sequence

import torch

from ..data.labels import LabelMap
from ..errors import LmClassifyError
from ..networks import SEQUENCE


class Task:
    """What every task provides. Subclasses fill in the abstract parts.

    ``network``: which network the estimator builds (``sequence`` or ``token``).
    ``labels``: the class map (None for regression). ``record_keys``: the scalar metrics
    the loop logs per evaluation (as ``val_<key>``) and ``--monitor`` may name;
    ``lower_is_better`` says which of them early stopping minimises; ``running_metric``
    is the per-batch training statistic ``correct`` counts (None: none).
    ``report_columns``: the summary table's columns in report.md.
    """

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    network: ClassVar[str] = SEQUENCE
    main_metric: ClassVar[str] = "accuracy"
    running_metric: ClassVar[Optional[str]] = "accuracy"
    record_keys: ClassVar[tuple[str, ...]] = ("loss",)
    report_columns: ClassVar[tuple[str, ...]] = ("loss", "accuracy", "precision_macro", "recall_macro", "f1_macro")
    lower_is_better: ClassVar[frozenset] = frozenset({"loss", "mse", "mae"})
    labels: Optional[LabelMap] = None

    # ---- construction ------------------------------------------------------------
    @classmethod
    def fit(cls, labels: Sequence, *, separator: str = ",", class_weights: Optional[str] = None,
            positive_label: Any = None) -> "Task":
        """The task fitted on the training labels (classes, weights, target scale)."""
        raise NotImplementedError

    @classmethod
    def from_saved(cls, labels: Optional[dict], state: dict, positive_label: Any = None) -> "Task":
        """Rebuild from ``lmclassify.json`` (``labels``, ``task_state``)."""
        raise NotImplementedError

    def state(self) -> dict:
        """Everything beyond the label map needed to rebuild this task (saved with the model)."""
        return {}

    def attach(self, network: torch.nn.Module) -> None:
        """Bind to the network's task-specific modules (a token task's CRF); most need none."""

    # ---- monitoring --------------------------------------------------------------
    def monitor_names(self) -> list[str]:
        return [f"val_{k}" for k in self.record_keys]

    def higher_is_better(self, monitor: str) -> bool:
        return monitor.removeprefix("val_") not in self.lower_is_better

    def check_monitor(self, monitor: str) -> None:
        if monitor not in self.monitor_names():
            raise LmClassifyError(f"--monitor {monitor} is not a metric of a {self.kind} task; "
                                  f"use one of {', '.join(self.monitor_names())}")

    def default_monitor(self) -> str:
        return "val_loss"

    # ---- labels ------------------------------------------------------------------
    @property
    def classes(self) -> list:
        return [] if self.labels is None else list(self.labels.classes)

    def id2label(self) -> dict[int, str]:
        return self.labels.id2label()

    def encode_labels(self, labels: Sequence, where=None) -> list:
        """Raw labels -> what the loss wants per example (collated by torch.tensor).
        ``where(i, j)`` names the place of item j of example i (a file line) for errors."""
        raise NotImplementedError

    # ---- training ----------------------------------------------------------------
    def prepare_batch(self, batch: dict, enc: Any, idx: Sequence[int], epoch: Optional[int]) -> dict:
        """A collated batch of examples ``idx`` of ``enc`` -> what the network and ``loss`` read.
        The loop calls it for every batch (``epoch`` None in evaluation); a task that makes its
        targets per batch (language modelling masks tokens) does it here, seeded by
        ``epoch`` and the example so a resumed run draws the same. Most tasks change nothing."""
        return batch

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def correct(self, logits: torch.Tensor, labels: torch.Tensor) -> float:
        return 0

    def gather(self, rows: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-example outputs (in input order) -> one tensor for ``metrics``/``predict``."""
        return torch.stack(list(rows))

    # ---- using -------------------------------------------------------------------
    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        raise LmClassifyError(f"a {self.kind} model has no class probabilities; use predict()")

    def predict(self, logits: torch.Tensor) -> list:
        """Predictions as the user wrote labels (class names, label lists, numbers)."""
        raise NotImplementedError

    def records(self, logits: torch.Tensor) -> list[dict]:
        """One JSON-ready dict per example for ``lmclassify predict``."""
        raise NotImplementedError

    def metrics(self, logits: torch.Tensor, labels: Sequence) -> dict:
        raise NotImplementedError

    def margins(self, logits: torch.Tensor) -> Optional[torch.Tensor]:
        """(N,): how far each example's prediction is from changing, in logits; None when
        the task has no such notion (int8 then skips its fp32 second look: ``quantize``)."""
        return None

    def score(self, metrics: dict) -> float:
        """The one number scikit-learn's ``score`` returns (higher is better)."""
        return float(metrics[self.main_metric])

    def calibrate(self, logits: torch.Tensor, labels: Sequence) -> Optional[dict]:
        """Tune decision rules on validation logits after training (multi-label thresholds);
        returns what was tuned, for the report, or None when the task has nothing to tune."""
        return None

    def compatibility_notes(self) -> list[str]:
        """What plain transformers, reading only config.json and the weights, would miss."""
        return []


REGISTRY: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    """Class decorator: make a task constructible by kind and restorable by saved name."""
    REGISTRY[cls.kind] = cls
    return cls
