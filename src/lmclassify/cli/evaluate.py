"""`lmclassify evaluate MODEL_DIR --data FILE`: metrics of a trained model on labelled text."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ..errors import LmClassifyError


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="score a trained model on a labelled file", description=__doc__)
    p.add_argument("model_dir")
    p.add_argument("--data", required=True, help="labelled CSV/TSV/JSONL file")
    p.add_argument("--text-column", default="text")
    p.add_argument("--label-column", default="label")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--quantize", choices=["int8"])
    p.add_argument("--output", "-o", help="write the metrics as JSON here")
    p.set_defaults(func=run)


def evaluate_file(model_dir: str, data: str, text_column: str = "text", label_column: str = "label",
                  batch_size: int = 64, device: str = "auto", quantize=None) -> dict:
    from ..classifier import TextClassifier
    from ..data.readers import read_examples

    if not Path(model_dir, "lmclassify.json").is_file():
        raise LmClassifyError(f"{model_dir} is not an lmclassify model directory (no lmclassify.json)")
    ex = read_examples(data, text_column, label_column)
    clf = TextClassifier.load(Path(model_dir), device=device, quantize=quantize)
    clf.train_config.eval_batch_size = batch_size
    return clf.evaluate(ex.texts, ex.labels)


def run(a: argparse.Namespace) -> int:
    m = evaluate_file(a.model_dir, a.data, a.text_column, a.label_column, a.batch_size, a.device, a.quantize)
    print(f"accuracy {m['accuracy']:.4f}  f1_macro {m['f1_macro']:.4f}  loss {m['loss']:.4f}  (n={m['n']})")
    if a.output:
        tmp = f"{a.output}.tmp-{os.getpid()}"
        Path(tmp).write_text(json.dumps(m, indent=2) + "\n")
        os.replace(tmp, a.output)
    return 0
