"""`lmclassify evaluate MODEL_DIR --data FILE`: metrics of a trained model on labelled data
(a table for text models, CoNLL for token models)."""
from __future__ import annotations

import argparse
import json

from .options import add_output, check_output
from .write import write_atomic


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", aliases=["evaluate-tokens"], help="score a trained model on a labelled file",
                       description=__doc__)
    p.add_argument("model_dir")
    p.add_argument("--data", required=True, help="labelled CSV/TSV/JSONL/Parquet file, or CoNLL for token models")
    p.add_argument("--text-column", help="default: as in training")
    p.add_argument("--text-pair-column", help="pair models: the second text's column (default: as in training)")
    p.add_argument("--label-column", help="default: as in training")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--device", default="auto")
    p.add_argument("--quantize", choices=["int8", "bf16"],
                   help="evaluate the int8 or bf16 model (CPU): what it costs on your data")
    add_output(p, required=False, what="write the metrics as JSON here")
    p.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from ..evaluation.metrics import headline
    from ..jobs import evaluate

    check_output(a.output, a.overwrite)
    m = evaluate(a.model_dir, a.data, text_column=a.text_column, label_column=a.label_column,
                 text_pair_column=a.text_pair_column, batch_size=a.batch_size, device=a.device, quantize=a.quantize)
    cut = f", {m['truncated']} truncated" if m.get("truncated") else \
        f", {m['over_max_length']} read in windows" if m.get("over_max_length") else ""
    print(f"{headline(m)}  (n={m['n']}{cut})")
    if a.output:
        write_atomic(a.output, json.dumps(m, indent=2) + "\n")
    return 0
