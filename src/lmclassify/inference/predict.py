"""Batched prediction from a saved model directory, as rows ready to write out."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Sequence

from ..classifier import TextClassifier


def predict_rows(clf: TextClassifier, texts: Sequence[str], batch_size: int = 64) -> list[dict]:
    """One dict per text: the label and a probability per class (in ``classes_`` order).
    Texts are sorted by length and batched inside ``predict_proba``."""
    clf.train_config.eval_batch_size = batch_size
    probs = clf.predict_proba(texts)
    names = [str(c) for c in clf.classes_]
    rows = []
    for text, p in zip(texts, probs):
        best = int(p.argmax())
        rows.append({"text": text, "label": clf.classes_[best], "score": float(p[best]),
                     "probabilities": {n: float(x) for n, x in zip(names, p)}})
    return rows


def format_rows(rows: list[dict], fmt: str) -> str:
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    buf = io.StringIO()
    classes = list(rows[0]["probabilities"]) if rows else []
    w = csv.writer(buf)
    w.writerow(["text", "label", "score"] + [f"p_{c}" for c in classes])
    for r in rows:
        w.writerow([r["text"], r["label"], f"{r['score']:.6f}"] + [f"{r['probabilities'][c]:.6f}" for c in classes])
    return buf.getvalue()
