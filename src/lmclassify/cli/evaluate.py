"""`lmclassify evaluate MODEL_DIR --data FILE`: metrics of a trained model on labelled text."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Optional



def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="score a trained model on a labelled file", description=__doc__)
    p.add_argument("model_dir")
    p.add_argument("--data", required=True, help="labelled CSV/TSV/JSONL file")
    p.add_argument("--text-column", help="default: as in training")
    p.add_argument("--text-pair-column", help="pair models: the second text's column (default: as in training)")
    p.add_argument("--label-column", default="label")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--quantize", choices=["int8"], help="evaluate the int8 model (CPU): what int8 costs on your data")
    p.add_argument("--output", "-o", help="write the metrics as JSON here")
    p.set_defaults(func=run)


def evaluate_file(model_dir: str, data: str, text_column: Optional[str] = None, label_column: str = "label",
                  batch_size: int = 64, device: str = "auto", quantize=None,
                  text_pair_column: Optional[str] = None) -> dict:
    from ..artifacts import input_columns
    from ..classifier import TextClassifier
    from ..data.readers import read_examples

    text, pair = input_columns(Path(model_dir), text_column, text_pair_column)  # also: a model directory?
    ex = read_examples(data, text, label_column, pair_column=pair)
    clf = TextClassifier.load(Path(model_dir), device=device, quantize=quantize)
    clf.train_config.eval_batch_size = batch_size
    return clf.evaluate(ex.inputs(), ex.labels)


def run(a: argparse.Namespace) -> int:
    from ..evaluation.metrics import headline

    m = evaluate_file(a.model_dir, a.data, a.text_column, a.label_column, a.batch_size, a.device, a.quantize,
                      a.text_pair_column)
    print(f"{headline(m)}  (n={m['n']})")
    if a.output:
        tmp = f"{a.output}.tmp-{os.getpid()}"
        Path(tmp).write_text(json.dumps(m, indent=2) + "\n")
        os.replace(tmp, a.output)
    return 0
