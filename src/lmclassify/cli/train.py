"""`lmclassify train`: fine-tune a model on labelled text and write a model directory."""
from __future__ import annotations

import argparse
import json

from ..config import DataConfig, ModelConfig, RunConfig, TrainConfig, parse_train_layers
from .options import add_training_options

# Options whose default is "not given", so a recipe's published defaults can fill them.
_TRAIN_OPTS = {"epochs": int, "batch_size": int, "learning_rate": float, "weight_decay": float, "schedule": str,
               "warmup_ratio": float, "monitor": str}


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
    d.add_argument("--text-pair-column", help="a second text per row: sentence-pair classification/regression")
    d.add_argument("--label-column", default="label")
    d.add_argument("--label-separator", default=",", help="between the labels of one row (multi-label; default ',')")
    d.add_argument("--split", default="0.7,0.1,0.2", help="train,validation,test fractions for --data")
    d.add_argument("--balance", choices=["none", "undersample"], default=None)
    d.add_argument("--max-length", type=int, default=None, help="truncate texts (or pairs) to this many tokens "
                                                                "(default 256, or the recipe's)")
    m = p.add_argument_group("model")
    m.add_argument("--model", default="smollm2-135m",
                   help="built-in name, local HF directory, .gguf file or hub id (default smollm2-135m)")
    m.add_argument("--train-layers", default=None,
                   help="N last blocks (+ final norm + head), 'all' or 'head' (default: 1 for decoders, "
                        "all for encoders)")
    m.add_argument("--pooling", default="auto", choices=["auto", "last", "cls", "mean", "max", "attention"],
                   help="auto: last for decoders, cls for encoders")
    m.add_argument("--head", choices=["linear", "mlp"], default="linear",
                   help="mlp: Linear, GELU, dropout, Linear (lmclassify's own head, like every encoder head)")
    m.add_argument("--head-bias", action="store_true", help="add a bias to a decoder's linear head")
    m.add_argument("--task", choices=["auto", "single", "multi", "regression"], default=None,
                   help="auto (default): from the labels - lists or separated labels: multi; "
                        "fractional numbers: regression; else single")
    m.add_argument("--pair-mode", choices=["joint", "siamese"], default="joint",
                   help="text pairs: joint (one sequence) or siamese (each text alone, head on [u, v, |u-v|])")
    m.add_argument("--input-template", choices=["auto", "chat", "none"], default="auto",
                   help="auto: decoders with a chat template read each text as a user turn")
    t = add_training_options(p, monitor_help="early stopping / best weights: val_loss (default, or the recipe's "
                                             "metric), or val_<metric> of the task (val_accuracy, val_f1_macro, "
                                             "val_f1, val_f1_micro, val_pearson, ...)")
    t.add_argument("--class-weights", help="'auto' (inverse class frequency) or one weight per class, "
                                           "comma-separated, in sorted class order")
    p.set_defaults(func=run)


def config_from_args(a: argparse.Namespace) -> RunConfig:
    from ..data.splits import parse_fractions
    from ..training.run import apply_recipe

    data = DataConfig(recipe=a.recipe, data=a.data, train=a.train_file, validation=a.validation, test=a.test,
                      text_column=a.text_column, label_column=a.label_column, split=parse_fractions(a.split),
                      balance=None if a.balance in (None, "none") else a.balance,
                      text_pair_column=a.text_pair_column, label_separator=a.label_separator)
    model = ModelConfig(name=a.model, pooling=a.pooling, head_bias=a.head_bias, input_template=a.input_template,
                        head=a.head, pair_mode=a.pair_mode)
    given_train = {k: getattr(a, k) for k in _TRAIN_OPTS if getattr(a, k) is not None}
    train = TrainConfig(grad_accum=a.grad_accum,
                        max_grad_norm=a.max_grad_norm or None, seed=a.seed, eval_every=a.eval_every,
                        patience=a.patience, keep_best=a.keep_best,
                        feature_cache=a.feature_cache, compile=a.compile, device=a.device, class_weights=a.class_weights,
                        **given_train)
    overrides = {"train": given_train, "model": {}, "data": {}}
    for key in ("max_length", "task"):  # given options win over a recipe's
        if getattr(a, key) is not None:
            setattr(model, key, getattr(a, key))
            overrides["model"][key] = getattr(a, key)
    if a.train_layers is not None:
        model.train_layers = parse_train_layers(a.train_layers)
        overrides["model"]["train_layers"] = model.train_layers
    if a.balance is not None:
        overrides["data"]["balance"] = data.balance
    return apply_recipe(RunConfig(model=model, data=data, train=train), overrides)


def run(a: argparse.Namespace) -> int:
    from ..evaluation.metrics import headline
    from ..training.run import run_training

    result = run_training(config_from_args(a), a.output, overwrite=a.overwrite)
    m = result["metrics"]
    print(f"\nmodel, report and plots written to {result['output']}/")
    for split in ("train", "validation", "test"):
        if split in m:
            print(f"  {split:<10} {headline(m[split])}")
    print(f"  training took {m['train_seconds']:.1f} s; report: {result['output']}/report.md")
    return 0
