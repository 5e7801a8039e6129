"""Prediction rows out: JSON Lines, or CSV with one column per scalar and per class.

Rows are what ``TextClassifier.predict_records`` returns, whatever the task: the text
(and text_pair), then ``label``/``score``/``probabilities`` (one label per text),
``labels``/``probabilities`` (multi-label) or ``value`` (regression). The CSV layout is
derived from the first row, so every task gets columns without a writer of its own.
"""
from __future__ import annotations

import csv
import io
import json


def _columns(row: dict) -> list[tuple[str, str]]:
    """(header, key) pairs; a dict value (probabilities) becomes one ``p_<class>`` column each."""
    out = []
    for k, v in row.items():
        if isinstance(v, dict):
            out += [(f"p_{c}", f"{k}\0{c}") for c in v]
        else:
            out.append((k, k))
    return out


def _cell(row: dict, key: str, separator: str) -> str:
    k, _, sub = key.partition("\0")
    v = row[k][sub] if sub else row[k]
    if isinstance(v, float):
        return f"{v:.6f}"
    if isinstance(v, list):
        return separator.join(map(str, v))
    return str(v)


def format_records(rows: list[dict], fmt: str, separator: str = ",") -> str:
    """``jsonl``: one JSON object per row; ``csv``: a header from the first row, label
    lists joined by ``separator`` (the training data's multi-label separator).

    >>> print(format_records([{"text": "hi", "label": "ham", "score": 0.9, "probabilities": {"ham": 0.9, "spam": 0.1}}], "csv"), end="")
    text,label,score,p_ham,p_spam
    hi,ham,0.900000,0.900000,0.100000
    """
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = _columns(rows[0]) if rows else []
    w.writerow([h for h, _ in cols])
    for r in rows:
        w.writerow([_cell(r, k, separator) for _, k in cols])
    return buf.getvalue()
