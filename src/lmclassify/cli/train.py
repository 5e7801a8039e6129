"""`lmclassify train`: fine-tune a model on labelled data (texts or CoNLL tokens) and
write a model directory with metrics, plots and a report.

  lmclassify train --recipe sms-spam --output runs/spam
  lmclassify train --data reviews.csv --text-column review --label-column stars -o runs/reviews
  lmclassify train --train train.conll --validation dev.conll --crf -o runs/ner
  lmclassify train --config runs/spam/training_config.json --output runs/again --epochs 2
"""
from __future__ import annotations

import argparse

from .options import add_config_options, add_output, config_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("train", aliases=["train-tokens"], help="fine-tune a classifier or tagger",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="a saved training_config.json (or JSON/YAML with some sections) to run "
                                    "again; options given here override it")
    add_config_options(p)
    add_output(p)
    p.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from ..evaluation.metrics import headline
    from ..jobs import train

    result = train(config_from_args(a), a.output, overwrite=a.overwrite)
    m = result["metrics"]
    print(f"\nmodel, report and plots written to {result['output']}/")
    for split in ("train", "validation", "test"):
        if split in m:
            cut = m[split].get("truncated")
            print(f"  {split:<10} {headline(m[split])}  (n={m[split]['n']}{f', {cut} truncated' if cut else ''})")
    print(f"  training took {m['train_seconds']:.1f} s; report: {result['output']}/report.md")
    return 0
