"""Token classification (NER) from the command line, one job per command:

  lmclassify train-tokens    --recipe wnut17 | --train FILE [--validation FILE] [--test FILE]  -o DIR
  lmclassify evaluate-tokens DIR --data FILE.conll
  lmclassify predict-tokens  DIR --text "..." | --input FILE.txt | --conll FILE

Data is CoNLL: a token and its IOB tag per line, a blank line between sentences.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..errors import LmClassifyError
from .options import add_training_options

# Options whose default is "not given", so a recipe's tuned defaults can fill them.
_TRAIN_OPTS = {"epochs": int, "batch_size": int, "learning_rate": float, "weight_decay": float,
               "schedule": str, "warmup_ratio": float, "monitor": str}
_MODEL_OPTS = ("model", "max_length")


def add_parsers(sub) -> None:
    p = sub.add_parser("train-tokens", help="fine-tune a token classifier (NER) on CoNLL data",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = p.add_argument_group("data (CoNLL: token<TAB>tag per line, blank line between sentences)")
    src = d.add_mutually_exclusive_group()
    src.add_argument("--recipe", help="built-in data recipe: wnut17")
    src.add_argument("--train", dest="train_file", help="training file")
    d.add_argument("--validation", help="validation file (early stopping, best weights)")
    d.add_argument("--test", help="test file")
    m = p.add_argument_group("model")
    m.add_argument("--model", help="built-in name, local HF directory or hub id (default minilm-l6)")
    m.add_argument("--crf", action="store_true", help="a CRF over the word scores (learned transitions, Viterbi)")
    m.add_argument("--train-layers", default=None, help="N last blocks (+ head), 'all' or 'head' (default 2)")
    m.add_argument("--max-length", type=int, help="pieces per sentence; words past it are tagged O (default 128)")
    add_training_options(p, monitor_choices=["val_loss", "val_entity_f1", "val_f1_macro", "val_accuracy"],
                         monitor_help="default val_loss, or the recipe's metric; val_entity_f1: micro F1 over "
                                      "entities (seqeval); val_f1_macro: its mean over entity types; "
                                      "val_accuracy: per word")
    p.set_defaults(func=run_train)

    p = sub.add_parser("evaluate-tokens", help="score a token classifier on a CoNLL file", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir")
    p.add_argument("--data", required=True, help="labelled CoNLL file")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--output", "-o", help="write the metrics as JSON here")
    p.set_defaults(func=run_evaluate)

    p = sub.add_parser("predict-tokens", help="find entities with a token classifier", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir")
    p.add_argument("--text", action="append", help="a text, split on whitespace (repeatable)")
    p.add_argument("--input", "-i", help="a text file, one text per line; '-' = stdin")
    p.add_argument("--conll", help="pre-tokenized CoNLL file (a tag column, if any, is ignored)")
    p.add_argument("--output", "-o", help="JSONL here instead of stdout")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run_predict)


def config_from_args(a: argparse.Namespace):
    from ..config import TrainConfig, parse_train_layers
    from ..token_classifier import TOKEN_TRAIN_DEFAULTS, TokenModelConfig
    from ..training.token_run import TokenDataConfig, TokenRunConfig, apply_token_recipe

    given_model = {"name" if k == "model" else k: getattr(a, k) for k in _MODEL_OPTS if getattr(a, k) is not None}
    if a.crf:
        given_model["crf"] = True
    if a.train_layers is not None:
        given_model["train_layers"] = parse_train_layers(a.train_layers)
    given_train = {k: getattr(a, k) for k in _TRAIN_OPTS if getattr(a, k) is not None}
    train = TrainConfig(**{**TOKEN_TRAIN_DEFAULTS, **given_train}, grad_accum=a.grad_accum,
                        max_grad_norm=a.max_grad_norm or None, seed=a.seed, eval_every=a.eval_every,
                        patience=a.patience, keep_best=a.keep_best,
                        feature_cache=a.feature_cache, compile=a.compile, device=a.device, eval_batch_size=64)
    data = TokenDataConfig(recipe=a.recipe, train=a.train_file, validation=a.validation, test=a.test)
    cfg = TokenRunConfig(model=TokenModelConfig(**given_model), data=data, train=train)
    return apply_token_recipe(cfg, {"model": given_model, "train": given_train})


def run_train(a: argparse.Namespace) -> int:
    from ..training.token_run import run_token_training

    if a.recipe is None and a.train_file is None:
        raise LmClassifyError("no data: pass --train FILE (CoNLL) or --recipe NAME (e.g. wnut17)")
    result = run_token_training(config_from_args(a), a.output, overwrite=a.overwrite)
    m = result["metrics"]
    print(f"\nmodel and report written to {result['output']}/")
    for split in ("train", "validation", "test"):
        if split in m:
            s = m[split]
            print(f"  {split:<10} entity_f1 {s['entity_f1']:.4f}  precision {s['entity_precision']:.4f}  "
                  f"recall {s['entity_recall']:.4f}  token_accuracy {s['token_accuracy']:.4f}")
    print(f"  training took {m['train_seconds']:.1f} s")
    return 0


def _load(model_dir: str, device: str, batch_size: int):
    from ..token_classifier import TokenClassifier

    if not Path(model_dir, "lmclassify.json").is_file():
        raise LmClassifyError(f"{model_dir} is not an lmclassify model directory (no lmclassify.json)")
    clf = TokenClassifier.load(model_dir, device=device)
    clf.train_config.eval_batch_size = batch_size
    return clf


def _write(path, text: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    Path(tmp).write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def run_evaluate(a: argparse.Namespace) -> int:
    from ..data.conll import read_conll

    s = read_conll(a.data)
    m = _load(a.model_dir, a.device, a.batch_size).evaluate(s.tokens, s.tags, split=None)
    print(f"entity_f1 {m['entity_f1']:.4f}  precision {m['entity_precision']:.4f}  recall {m['entity_recall']:.4f}  "
          f"token_accuracy {m['token_accuracy']:.4f}  (sentences {m['n']}, entities {m['n_entities']})")
    if a.output:
        _write(a.output, json.dumps(m, indent=2) + "\n")
    return 0


def _lines(text: str) -> list[str]:
    """One text per line; the final newline ends the last line rather than adding one."""
    lines = [x.removesuffix("\r") for x in text.split("\n")]
    return lines[:-1] if lines and lines[-1] == "" else lines


def run_predict(a: argparse.Namespace) -> int:
    from ..data.conll import parse_conll
    from ..data.readers import _read_text

    if a.output and Path(a.output).exists() and not a.overwrite:
        raise LmClassifyError(f"{a.output} exists; pass --overwrite to replace it")
    if sum(x is not None for x in (a.text, a.input, a.conll)) > 1:
        raise LmClassifyError("pass only one of --text, --input, --conll")
    if a.text:
        texts = list(a.text)
    elif a.conll:
        texts = parse_conll(_read_text(Path(a.conll)), a.conll, labelled=False).tokens
    elif a.input and a.input != "-":
        texts = _lines(_read_text(Path(a.input)))
    elif a.input == "-" or not sys.stdin.isatty():
        texts = _lines(sys.stdin.read())
    else:
        raise LmClassifyError("nothing to tag: pass --text, --input FILE, --conll FILE, or pipe texts on stdin")
    if not texts:
        raise LmClassifyError("no texts to tag (the input is empty)")
    rows = _load(a.model_dir, a.device, a.batch_size).annotate(texts)
    out = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if a.output:
        _write(a.output, out)
    else:
        sys.stdout.write(out)
    return 0
