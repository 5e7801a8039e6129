"""`lmclassify zero-shot`: accuracy of the untuned base LM, prompted, on the test split."""
from __future__ import annotations

import argparse
import json

from .options import add_output, check_output
from .write import write_atomic


def add_parser(sub) -> None:
    p = sub.add_parser("zero-shot", help="prompted baseline with the untuned LM", description=__doc__)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--recipe", help="built-in data recipe, e.g. sms-spam")
    src.add_argument("--data", help="one labelled file, split by --split (the test part is scored)")
    src.add_argument("--test", help="a labelled test file")
    p.add_argument("--text-column", default="text")
    p.add_argument("--label-column", default="label")
    p.add_argument("--split", help="train,validation,test fractions for --data (default 0.7,0.1,0.2)")
    p.add_argument("--balance", choices=["none", "undersample"], default=None)
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--model", help="default: smollm2-135m (zero-shot needs a generative decoder)")
    p.add_argument("--positive-label", help="for two classes: the label the yes/no question asks about")
    p.add_argument("--limit", type=int, help="score only the first N test texts")
    p.add_argument("--batch-size", type=int, default=16)
    add_output(p, required=False, what="write the metrics as JSON here")
    p.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from ..config import DataConfig, ModelConfig, RunConfig, TrainConfig
    from ..data.splits import parse_fractions
    from ..jobs import zero_shot
    from ..models.resolve import DEFAULT_DECODER

    check_output(a.output, a.overwrite)
    data = DataConfig(recipe=a.recipe, data=a.data, test=a.test, text_column=a.text_column,
                      label_column=a.label_column, split=parse_fractions(a.split) if a.split else None,
                      balance=a.balance, positive_label=a.positive_label)
    # zero-shot prompts a generative model: a recipe's tuned model (an encoder) does not apply
    cfg = RunConfig(model=ModelConfig(name=a.model or DEFAULT_DECODER), data=data, train=TrainConfig(seed=a.seed))
    result = zero_shot(cfg, limit=a.limit, batch_size=a.batch_size)
    m = result["test"]
    print(f"zero-shot {result['model']}: test accuracy {m['accuracy']:.4f}, f1_macro {m['f1_macro']:.4f} (n={m['n']})")
    if a.output:
        write_atomic(a.output, json.dumps(result, indent=2) + "\n")
    return 0
