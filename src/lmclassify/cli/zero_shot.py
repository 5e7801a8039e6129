"""`lmclassify zero-shot`: accuracy of the untuned base LM, prompted, on the test split."""
from __future__ import annotations

import argparse
import json

from ..errors import LmClassifyError


def add_parser(sub) -> None:
    p = sub.add_parser("zero-shot", help="prompted baseline with the untuned LM", description=__doc__)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--recipe", help="built-in data recipe, e.g. sms-spam")
    src.add_argument("--data", help="one labelled file, split by --split (the test part is scored)")
    src.add_argument("--test", help="a labelled test file")
    p.add_argument("--text-column", default="text")
    p.add_argument("--label-column", default="label")
    p.add_argument("--split", default="0.7,0.1,0.2")
    p.add_argument("--balance", choices=["none", "undersample"], default=None)
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--positive-label", help="for two classes: the label the yes/no question asks about")
    p.add_argument("--limit", type=int, help="score only the first N test texts")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--output", "-o", help="write the metrics as JSON here")
    p.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from ..config import DataConfig, RunConfig
    from ..data.labels import LabelMap
    from ..data.splits import parse_fractions
    from ..evaluation.metrics import classification_metrics
    from ..inference.zero_shot import ZeroShot
    from ..training.run import apply_recipe, load_splits

    data = DataConfig(recipe=a.recipe, data=a.data, test=a.test, train=a.test, text_column=a.text_column,
                      label_column=a.label_column, split=parse_fractions(a.split),
                      balance=None if a.balance in (None, "none") else a.balance)
    overrides = {"data": {"balance": data.balance}} if a.balance else {}
    cfg = apply_recipe(RunConfig(data=data), overrides)
    train, _, test = load_splits(cfg.data, a.seed)
    test = test or train  # --test FILE: the whole file is the test set
    from ..training.tasks import infer_task

    if train.pairs is not None or cfg.model.task not in ("auto", "single") or infer_task(train.labels) != "single":
        raise LmClassifyError("zero-shot prompting scores one label per single text; this data has text pairs, "
                              "several labels per text or numeric targets")
    if a.limit:
        test = test.subset(range(min(a.limit, len(test))))
    labels = LabelMap.fit(train.labels + test.labels)
    names = [str(c) for c in labels.classes]
    positive = a.positive_label or cfg.data.positive_label
    pred = ZeroShot(a.model).predict(test.texts, names, positive=positive, batch_size=a.batch_size)
    m = classification_metrics(labels.encode(test.labels), pred, names,
                               positive_label=names.index(str(positive)) if positive in names else None)
    print(f"zero-shot {a.model}: test accuracy {m['accuracy']:.4f}, f1_macro {m['f1_macro']:.4f} (n={m['n']})")
    if a.output:
        with open(a.output, "w") as f:
            json.dump({"model": a.model, "test": m}, f, indent=2)
    return 0
