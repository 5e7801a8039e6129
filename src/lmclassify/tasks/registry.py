"""Choosing a task: from the labels (like transformers' ``problem_type``), by name, or
from a saved model. The one place that knows every task class."""
from __future__ import annotations

from typing import Any, Optional, Sequence

from ..errors import LmClassifyError
from .base import REGISTRY, Task
from .multi_label import MultiLabel
from ..data.numbers import float_written, number
from .regression import Regression
from .single_label import SingleLabel
from .token_labels import TokenLabels

TASKS = tuple(REGISTRY)  # single, multi, regression, token
_BY_NAME = {cls.name: cls for cls in REGISTRY.values()}
__all__ = ["TASKS", "infer_task", "make_task", "task_from_saved", "SingleLabel", "MultiLabel", "Regression",
           "TokenLabels"]


def infer_task(labels: Sequence, separator: str = ",") -> str:
    """The task shape the training labels imply: lists (or strings holding ``separator``)
    -> multi; all numbers, some written as floats ("3.8", "5.000", 0.5) -> regression;
    anything else (names, integer ids) -> single. Integer-only targets such as 1-5 stars
    stay classes; ``--task regression`` says otherwise. (Token data is known by its
    format, CoNLL, not by its labels.)"""
    values = list(labels)
    if any(isinstance(y, (list, tuple)) for y in values):
        return "multi"
    if values and all(number(y) is not None for y in values) and any(float_written(y) for y in values):
        return "regression"
    if separator and any(isinstance(y, str) and separator in y for y in values):
        return "multi"
    return "single"


def make_task(kind: str, labels: Sequence, *, separator: str = ",", class_weights: Optional[str] = None,
              positive_label: Any = None) -> Task:
    """Fit the task of shape ``kind`` ('auto' infers it) on the training labels."""
    kind = infer_task(labels, separator) if kind == "auto" else kind
    cls = REGISTRY.get(kind)
    if cls is None:
        raise LmClassifyError(f"unknown task {kind!r}; use one of auto, {', '.join(TASKS)}")
    return cls.fit(labels, separator=separator, class_weights=class_weights, positive_label=positive_label)


def task_from_saved(name: str, labels: Optional[dict], state: dict, positive_label: Any = None) -> Task:
    """Rebuild a saved task from ``lmclassify.json`` (``task``, ``labels``, ``task_state``)."""
    cls = _BY_NAME.get(name)
    if cls is None:
        raise LmClassifyError(f"saved model has an unknown task {name!r}; is it from a newer lmclassify?")
    return cls.from_saved(labels, state or {}, positive_label)
