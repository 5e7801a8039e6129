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


def multilabel_metrics(y_true: Sequence[Sequence[int]], y_pred: Sequence[Sequence[int]],
                       label_names: Sequence[str], loss: Optional[float] = None) -> dict:
    """Micro and macro precision/recall/F1 over (n, C) 0/1 indicator rows, per-label numbers,
    and ``accuracy`` = exact-match (subset) accuracy, as scikit-learn defines it for
    multi-label data. A label never present nor predicted scores 0 (``zero_division=0``).

    Keys: ``loss`` (if given), ``accuracy``, ``f1_micro``, ``f1_macro``, ``precision_micro``,
    ``recall_micro``, ``precision_macro``, ``recall_macro``, ``per_class``, ``labels``, ``n``.
    """
    import numpy as np

    t, p_ = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    names = [str(n) for n in label_names]
    if t.shape != p_.shape or t.ndim != 2 or t.shape[1] != len(names):
        raise ValueError(f"y_true {t.shape} and y_pred {p_.shape} must both be (n, {len(names)})")
    if not len(t):
        raise ValueError("no examples to evaluate")
    out: dict[str, Any] = {} if loss is None else {"loss": float(loss)}
    out["accuracy"] = float(accuracy_score(t, p_))
    for avg in ("micro", "macro"):
        pr, rc, f, _ = precision_recall_fscore_support(t, p_, average=avg, zero_division=0)
        out.update({f"f1_{avg}": float(f), f"precision_{avg}": float(pr), f"recall_{avg}": float(rc)})
    pr, rc, f, sup = precision_recall_fscore_support(t, p_, average=None, zero_division=0)
    out["per_class"] = {n: {"precision": float(pr[i]), "recall": float(rc[i]), "f1": float(f[i]),
                            "support": int(sup[i])} for i, n in enumerate(names)}
    out.update(labels=names, n=int(len(t)))
    return out


def regression_metrics(y_true: Sequence[float], y_pred: Sequence[float], loss: Optional[float] = None) -> dict:
    """Pearson and Spearman correlation (scipy), mean squared and absolute error.

    A constant prediction has no defined correlation; it is reported as 0.0 (no linear or
    rank relation), which keeps ``metrics.json`` valid JSON and early stopping comparable.
    Keys: ``loss`` (if given), ``pearson``, ``spearman``, ``mse``, ``mae``, ``n``.
    """
    import warnings

    import numpy as np
    from scipy.stats import pearsonr, spearmanr

    t, p_ = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    if t.shape != p_.shape:
        raise ValueError(f"y_true has {t.shape} values but y_pred has {p_.shape}")
    if not len(t):
        raise ValueError("no examples to evaluate")

    def corr(fn) -> float:
        if len(t) < 2 or np.ptp(t) == 0 or np.ptp(p_) == 0:
            return 0.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = float(fn(t, p_)[0])
        return r if np.isfinite(r) else 0.0

    out: dict[str, Any] = {} if loss is None else {"loss": float(loss)}
    out.update(pearson=corr(pearsonr), spearman=corr(spearmanr), mse=float(np.mean((t - p_) ** 2)),
               mae=float(np.mean(np.abs(t - p_))), n=int(len(t)))
    return out


# The numbers a one-line summary shows, in this order, for whichever task produced them.
HEADLINE = ("entity_f1", "entity_precision", "entity_recall", "accuracy", "f1", "f1_micro", "f1_macro", "pearson", "spearman", "mse", "loss")


def headline(m: dict) -> str:
    """``accuracy 0.9100  f1_macro 0.9050  loss 0.2400`` with the keys this task has."""
    return "  ".join(f"{k} {m[k]:.4f}" for k in HEADLINE if isinstance(m.get(k), (int, float)))


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
