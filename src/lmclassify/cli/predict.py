"""`lmclassify predict MODEL_DIR`: labels (or tags and entities) for --text arguments, a
file, or stdin, from any model directory."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import LmClassifyError
from .options import add_output, check_output
from .write import write_atomic


def add_parser(sub) -> None:
    p = sub.add_parser("predict", aliases=["predict-tokens"], help="predict with a trained model",
                       description=__doc__)
    p.add_argument("model_dir")
    p.add_argument("--text", action="append", help="a text (repeatable); token models split it on whitespace")
    p.add_argument("--text-pair", action="append",
                   help="pair models: the second text of each --text, in the same order (repeatable)")
    p.add_argument("--input", "-i", help="CSV/TSV/JSONL/Parquet (by --text-column) or TXT (one text per line); "
                                         "'-' = stdin (pair models: 'text<TAB>text_pair' per line)")
    p.add_argument("--conll", help="token models: pre-tokenized CoNLL file (a tag column, if any, is ignored)")
    p.add_argument("--text-column", help="default: as in training")
    p.add_argument("--text-pair-column", help="pair models: the second text's column (default: as in training)")
    p.add_argument("--format", choices=["jsonl", "csv"], default=None, help="default: from --output suffix, else jsonl")
    add_output(p, required=False, what="write here instead of stdout")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--device", default="auto")
    p.add_argument("--quantize", choices=["int8", "bf16"],
                   help="CPU inference in int8 (int8 weights, per-token int8 activations: ~2x faster, slightly "
                        "less exact) or bf16 (CPUs with AMX: faster and closer to fp32 than int8); every layer "
                        "but the head; stays fp32, saying so, where it would not be faster. Measure with "
                        "evaluate --quantize")
    p.set_defaults(func=run)


def _inputs(a: argparse.Namespace, pairs: bool) -> list:
    from ..data.readers import read_texts_from_stream
    from ..jobs.use import read_inputs

    if sum(x is not None for x in (a.text, a.input, a.conll)) > 1:
        raise LmClassifyError("pass only one of --text, --input, --conll")
    if a.text:
        if not pairs:
            if a.text_pair:
                raise LmClassifyError(f"{a.model_dir} classifies single texts; drop --text-pair")
            return list(a.text)
        if len(a.text_pair or []) != len(a.text):
            raise LmClassifyError(f"{a.model_dir} classifies text pairs: give one --text-pair per --text "
                                  f"({len(a.text)} --text, {len(a.text_pair or [])} --text-pair)")
        return list(zip(a.text, a.text_pair))
    if a.conll or (a.input and a.input != "-"):
        return read_inputs(a.model_dir, a.conll or a.input, text_column=a.text_column,
                           text_pair_column=a.text_pair_column, conll=bool(a.conll))
    if a.input == "-" or not sys.stdin.isatty():
        return read_texts_from_stream(sys.stdin, pairs=pairs)
    raise LmClassifyError("nothing to predict: pass --text, --input FILE, or pipe texts on stdin")


def run(a: argparse.Namespace) -> int:
    from ..data.writers import format_records
    from ..estimators.artifacts import read_meta, saved_config, saved_network
    from ..jobs import predict
    from ..tasks import TOKEN

    check_output(a.output, a.overwrite)
    model_dir = Path(a.model_dir)
    meta = read_meta(model_dir)  # also: is this a model directory?
    fmt = a.format or ("csv" if a.output and a.output.endswith(".csv") else "jsonl")
    if fmt == "csv" and saved_network(model_dir) == TOKEN:
        raise LmClassifyError("token predictions hold entity spans; write them as JSON Lines (--format jsonl)")
    records = predict(model_dir, _inputs(a, bool(meta.get("pairs"))), batch_size=a.batch_size, device=a.device,
                      quantize=a.quantize)
    out = format_records(records, fmt, saved_config(model_dir).data.label_separator)
    if a.output:
        write_atomic(a.output, out)
    else:
        sys.stdout.write(out)
    return 0
