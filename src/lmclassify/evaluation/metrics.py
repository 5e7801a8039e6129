"""Metrics through scikit-learn, as JSON-safe dicts, and the per-evaluation JSONL log."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], label_names: Sequence[str],
                           loss: Optional[float] = None, positive_label: Optional[int] = None) -> dict:
    """Accuracy, macro and per-class precision/recall/F1, confusion matrix (rows = true)."""
    names = [str(n) for n in label_names]
    labels = list(range(len(names)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    pm, rm, fm, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    out = {}
    if loss is not None:
        out["loss"] = float(loss)
    out.update({
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision_macro": float(pm), "recall_macro": float(rm), "f1_macro": float(fm),
        "per_class": {n: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                      for i, n in enumerate(names)},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "labels": names,
        "n": len(y_true),
    })
    if len(names) == 2:
        pos = 1 if positive_label is None else positive_label
        out.update(precision=float(p[pos]), recall=float(r[pos]), f1=float(f[pos]), positive_label=names[pos])
    return out


class MetricsLog:
    """One JSON object per line per evaluation, flushed at once (readable while training)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")

    def log(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def read_metrics_log(path: Path) -> list[dict]:
    return [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]
