"""Metrics through scikit-learn, as JSON-safe dicts, and the per-evaluation JSONL log.

Everything returned here goes straight into ``metrics.json`` and ``report.md``, so values
are plain Python ``float``/``int``/``list`` (no numpy scalars, which ``json`` rejects).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence

from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], label_names: Sequence[str],
                           loss: Optional[float] = None, positive_label: Optional[int] = None) -> dict:
    """Accuracy, macro and per-class precision/recall/F1, and the confusion matrix.

    Label ids are positions in ``label_names``. Every class is reported (``labels=range(n)``),
    even one absent from both truth and predictions, so tables from different splits line up;
    its precision/recall/F1 are 0 (``zero_division=0``), not a warning.

    Keys: ``loss`` (only if given), ``accuracy``, ``precision_macro``, ``recall_macro``,
    ``f1_macro``, ``per_class`` ({name: {precision, recall, f1, support}}),
    ``confusion_matrix`` (rows = true, columns = predicted, in label order), ``labels``, ``n``.
    With exactly two classes also ``precision``, ``recall``, ``f1`` of the positive class
    (id ``positive_label``, default 1) and ``positive_label`` (its name).
    """
    y_true, y_pred = [int(y) for y in y_true], [int(y) for y in y_pred]
    names = [str(n) for n in label_names]
    labels = list(range(len(names)))
    # sklearn would silently drop unknown ids from the per-class numbers but count them in
    # accuracy; a mismatch between ids and names is a bug upstream, so say so.
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    if not y_true:
        raise ValueError("no examples to evaluate")
    if not names:
        raise ValueError("label_names is empty")
    bad = sorted({y for y in y_true + y_pred if not 0 <= y < len(names)})
    if bad:
        raise ValueError(f"label ids {bad} are outside 0..{len(names) - 1} ({names})")

    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    pm, rm, fm, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average="macro",
                                                    zero_division=0)
    out: dict[str, Any] = {}
    if loss is not None:
        out["loss"] = float(loss)
    out.update({
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision_macro": float(pm), "recall_macro": float(rm), "f1_macro": float(fm),
        "per_class": {n: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                          "support": int(s[i])} for i, n in enumerate(names)},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "labels": names,
        "n": len(y_true),
    })
    if len(names) == 2:
        pos = 1 if positive_label is None else int(positive_label)
        if pos not in labels:
            raise ValueError(f"positive_label {positive_label} is not a label id (0 or 1)")
        out.update(precision=float(p[pos]), recall=float(r[pos]), f1=float(f[pos]), positive_label=names[pos])
    return out


def _json_default(o: Any) -> Any:
    # numpy / torch scalars and arrays sneak into records; store their Python value.
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


class MetricsLog:
    """Appends one JSON object per line to ``metrics.jsonl``, flushed per line.

    Flushing each record means the file can be tailed while training runs and survives a
    crash up to the last evaluation. A new log starts the file afresh (one run, one log)
    unless ``append=True``.
    """

    def __init__(self, path: Path, *, append: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not append:
            self.path.write_text("", encoding="utf-8")

    def log(self, record: dict) -> None:
        """Write ``record`` as one line (e.g. ``{"step": 130, "examples_seen": 1040, "val_loss": 0.38}``)."""
        line = json.dumps(record, default=_json_default)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()

    __call__ = log


def read_metrics_log(path: Path) -> list[dict]:
    """The records of a ``metrics.jsonl``, in order; blank lines are skipped.

    A final line cut short (the process died mid-write) is dropped rather than making the
    whole log unreadable; a bad line anywhere else is real corruption and raises.
    """
    lines = [x for x in Path(path).read_text(encoding="utf-8").splitlines() if x.strip()]
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise
    return records
