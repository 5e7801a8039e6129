"""`lmclassify train`: fine-tune a model on labelled text and write a model directory."""
from __future__ import annotations

import argparse
import json

from ..config import DataConfig, ModelConfig, RunConfig, TrainConfig, parse_train_layers

# Options whose default is "not given", so a recipe's published defaults can fill them.
_TRAIN_OPTS = {"epochs": int, "batch_size": int, "learning_rate": float, "weight_decay": float}


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="fine-tune a classifier", description=__doc__)
    d = p.add_argument_group("data")
    src = d.add_mutually_exclusive_group()
    src.add_argument("--recipe", help="built-in data recipe, e.g. sms-spam")
    src.add_argument("--data", help="one CSV/TSV/JSONL file, split by --split")
    src.add_argument("--train", dest="train_file", help="training file (with --validation/--test)")
    d.add_argument("--validation", help="validation file")
    d.add_argument("--test", help="test file")
    d.add_argument("--text-column", default="text")
    d.add_argument("--label-column", default="label")
    d.add_argument("--split", default="0.7,0.1,0.2", help="train,validation,test fractions for --data")
    d.add_argument("--balance", choices=["none", "undersample"], default=None)
    d.add_argument("--max-length", type=int, default=256, help="truncate texts to this many tokens")
    m = p.add_argument_group("model")
    m.add_argument("--model", default="smollm2-135m",
                   help="built-in name, local HF directory, .gguf file or hub id (default smollm2-135m)")
    m.add_argument("--train-layers", default=None, help="N last blocks (+ final norm + head), 'all' or 'head' (default 1)")
    m.add_argument("--pooling", default="auto", choices=["auto", "last", "cls", "mean", "max", "attention"])
    m.add_argument("--head-bias", action="store_true", help="add a bias to the linear head")
    m.add_argument("--input-template", choices=["auto", "chat", "none"], default="auto",
                   help="auto: decoders with a chat template read each text as a user turn")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--learning-rate", "--lr", type=float)
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--schedule", choices=["constant", "linear", "cosine"], default="constant")
    t.add_argument("--warmup-ratio", type=float, default=0.0)
    t.add_argument("--grad-accum", type=int, default=1)
    t.add_argument("--max-grad-norm", type=float, default=1.0, help="0 disables clipping")
    t.add_argument("--seed", type=int, default=123)
    t.add_argument("--eval-every", type=int, default=None, help="evaluate every N steps (default: each epoch)")
    t.add_argument("--patience", type=int, default=None, help="early stopping after N evaluations without improvement")
    t.add_argument("--monitor", default="val_loss", choices=["val_loss", "val_accuracy", "val_f1_macro"])
    t.add_argument("--no-keep-best", dest="keep_best", action="store_false", help="keep the last weights, not the best")
    t.add_argument("--no-feature-cache", dest="feature_cache", action="store_false")
    t.add_argument("--device", default="auto")
    p.add_argument("--output", "-o", required=True, help="output model directory")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.set_defaults(func=run)


def config_from_args(a: argparse.Namespace) -> RunConfig:
    from ..data.splits import parse_fractions
    from ..training.run import apply_recipe

    data = DataConfig(recipe=a.recipe, data=a.data, train=a.train_file, validation=a.validation, test=a.test,
                      text_column=a.text_column, label_column=a.label_column, split=parse_fractions(a.split),
                      balance=None if a.balance in (None, "none") else a.balance)
    model = ModelConfig(name=a.model, pooling=a.pooling, head_bias=a.head_bias, max_length=a.max_length,
                        input_template=a.input_template)
    given_train = {k: getattr(a, k) for k in _TRAIN_OPTS if getattr(a, k) is not None}
    train = TrainConfig(schedule=a.schedule, warmup_ratio=a.warmup_ratio, grad_accum=a.grad_accum,
                        max_grad_norm=a.max_grad_norm or None, seed=a.seed, eval_every=a.eval_every,
                        patience=a.patience, monitor=a.monitor, keep_best=a.keep_best,
                        feature_cache=a.feature_cache, device=a.device, **given_train)
    overrides = {"train": given_train, "model": {}, "data": {}}
    if a.train_layers is not None:
        model.train_layers = parse_train_layers(a.train_layers)
        overrides["model"]["train_layers"] = model.train_layers
    if a.balance is not None:
        overrides["data"]["balance"] = data.balance
    return apply_recipe(RunConfig(model=model, data=data, train=train), overrides)


def run(a: argparse.Namespace) -> int:
    from ..training.run import run_training

    result = run_training(config_from_args(a), a.output, overwrite=a.overwrite)
    m = result["metrics"]
    print(f"\nmodel, report and plots written to {result['output']}/")
    for split in ("train", "validation", "test"):
        if split in m:
            print(f"  {split:<10} accuracy {m[split]['accuracy']:.4f}  f1_macro {m[split]['f1_macro']:.4f}  loss {m[split]['loss']:.4f}")
    print(f"  training took {m['train_seconds']:.1f} s; report: {result['output']}/report.md")
    return 0
