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
    p.add_argument("--input", "-i", help="CSV/TSV/JSONL (by --text-column) or TXT (one text per line); '-' = stdin")
    p.add_argument("--text-column", default="text")
    p.add_argument("--format", choices=["jsonl", "csv"], default=None, help="default: from --output suffix, else jsonl")
    p.add_argument("--output", "-o", help="write here instead of stdout")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--quantize", choices=["int8"], help="dynamic int8 linear layers (CPU): faster, slightly less exact")
    p.set_defaults(func=run)


def _texts(a: argparse.Namespace) -> list[str]:
    from ..data.readers import read_texts, read_texts_from_stream

    if a.text:
        return list(a.text)
    if a.input and a.input != "-":
        return read_texts(a.input, a.text_column)
    if a.input == "-" or not sys.stdin.isatty():
        return read_texts_from_stream(sys.stdin)
    raise LmClassifyError("nothing to classify: pass --text, --input FILE, or pipe texts on stdin")


def run(a: argparse.Namespace) -> int:
    from ..classifier import TextClassifier
    from ..inference.predict import format_rows, predict_rows

    if a.output and Path(a.output).exists() and not a.overwrite:
        raise LmClassifyError(f"{a.output} exists; pass --overwrite to replace it")
    texts = _texts(a)
    if not texts:
        raise LmClassifyError("no texts to classify (the input is empty)")
    if not Path(a.model_dir, "lmclassify.json").is_file():
        raise LmClassifyError(f"{a.model_dir} is not an lmclassify model directory (no lmclassify.json)")
    clf = TextClassifier.load(Path(a.model_dir), device=a.device, quantize=a.quantize)
    fmt = a.format or ("csv" if a.output and a.output.endswith(".csv") else "jsonl")
    out = format_rows(predict_rows(clf, texts, a.batch_size), fmt)
    if a.output:
        tmp = f"{a.output}.tmp-{os.getpid()}"
        Path(tmp).write_text(out, encoding="utf-8")
        os.replace(tmp, a.output)
    else:
        sys.stdout.write(out)
    return 0
