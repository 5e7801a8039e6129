"""`lmclassify predict MODEL_DIR`: classify --text arguments, a file, or stdin."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..errors import LmClassifyError


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="classify texts with a trained model", description=__doc__)
    p.add_argument("model_dir")
    p.add_argument("--text", action="append", help="a text to classify (repeatable)")
    p.add_argument("--text-pair", action="append",
                   help="pair models: the second text of each --text, in the same order (repeatable)")
    p.add_argument("--input", "-i", help="CSV/TSV/JSONL (by --text-column) or TXT (one text per line); '-' = stdin "
                                         "(pair models: 'text<TAB>text_pair' per line)")
    p.add_argument("--text-column", help="default: as in training")
    p.add_argument("--text-pair-column", help="pair models: the second text's column (default: as in training)")
    p.add_argument("--format", choices=["jsonl", "csv"], default=None, help="default: from --output suffix, else jsonl")
    p.add_argument("--output", "-o", help="write here instead of stdout")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--quantize", choices=["int8"],
                   help="int8 weights and per-token int8 activations in every layer but the head (CPU): "
                        "~2x faster, slightly less exact; measure with evaluate --quantize int8")
    p.set_defaults(func=run)


def _texts(a: argparse.Namespace, pairs: bool, columns: tuple) -> list:
    from ..data.readers import read_texts, read_texts_from_stream

    if a.text:
        if not pairs:
            if a.text_pair:
                raise LmClassifyError(f"{a.model_dir} classifies single texts; drop --text-pair")
            return list(a.text)
        if len(a.text_pair or []) != len(a.text):
            raise LmClassifyError(f"{a.model_dir} classifies text pairs: give one --text-pair per --text "
                                  f"({len(a.text)} --text, {len(a.text_pair or [])} --text-pair)")
        return list(zip(a.text, a.text_pair))
    if a.input and a.input != "-":
        return read_texts(a.input, *columns)
    if a.input == "-" or not sys.stdin.isatty():
        return read_texts_from_stream(sys.stdin, pairs=pairs)
    raise LmClassifyError("nothing to classify: pass --text, --input FILE, or pipe texts on stdin")


def run(a: argparse.Namespace) -> int:
    from ..artifacts import input_columns, read_text_meta
    from ..classifier import TextClassifier
    from ..data.writers import format_records

    if a.output and Path(a.output).exists() and not a.overwrite:
        raise LmClassifyError(f"{a.output} exists; pass --overwrite to replace it")
    model_dir = Path(a.model_dir)
    pairs = bool(read_text_meta(model_dir).get("pairs"))  # also: is this a model directory?
    from_file = a.input and a.input != "-" and not a.text
    columns = input_columns(model_dir, a.text_column, a.text_pair_column) if from_file else ("text", None)
    texts = _texts(a, pairs, columns)
    if not texts:
        raise LmClassifyError("no texts to classify (the input is empty)")
    clf = TextClassifier.load(model_dir, device=a.device, quantize=a.quantize)
    clf.train_config.eval_batch_size = a.batch_size
    fmt = a.format or ("csv" if a.output and a.output.endswith(".csv") else "jsonl")
    out = format_records(clf.predict_records(texts), fmt, clf.label_separator)
    if a.output:
        tmp = f"{a.output}.tmp-{os.getpid()}"
        Path(tmp).write_text(out, encoding="utf-8")
        os.replace(tmp, a.output)
    else:
        sys.stdout.write(out)
    return 0
