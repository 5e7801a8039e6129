"""`lmclassify train`: fine-tune a model on labelled data (texts or CoNLL tokens) and
write a model directory with metrics, plots and a report.

  lmclassify train --recipe sms-spam --output runs/spam
  lmclassify train --data reviews.csv --text-column review --label-column stars -o runs/reviews
  lmclassify train --train train.conll --validation dev.conll --crf -o runs/ner
  lmclassify train --config runs/spam/training_config.json --output runs/again --epochs 2
  lmclassify train --resume runs/spam          # continue a run that was killed or stopped with Ctrl-C

A run lives in OUTPUT.partial/ (metrics.jsonl readable from the first evaluation, a
checkpoint at every evaluation) and becomes OUTPUT when complete.
"""
from __future__ import annotations

import argparse

from .options import add_config_options, add_output, config_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("train", aliases=["train-tokens"], help="fine-tune a classifier or tagger",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="a saved training_config.json (or JSON/YAML with some sections) to run "
                                    "again; options given here override it")
    p.add_argument("--resume", nargs="?", const=True, metavar="OUTPUT",
                   help="continue an interrupted run exactly where it stopped (its output, or OUTPUT.partial); "
                        "options given must equal the run's")
    add_config_options(p)
    add_output(p, required=False)
    p.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from ..evaluation.metrics import headline
    from ..jobs import train

    from ..errors import LmClassifyError
    from ..jobs.rundir import output_of
    from .options import given_options

    output = a.output
    if isinstance(a.resume, str):
        output = str(output_of(a.resume)) if not output else output
    if not output:
        raise LmClassifyError("name the model directory to write: --output DIR")
    # resuming with no options runs the saved config; options given must match it
    given = a.config or any(given_options(a).values())
    config = config_from_args(a) if given or not a.resume else None
    result = train(config, output, overwrite=a.overwrite, resume=bool(a.resume))
    m = result["metrics"]
    print(f"\nmodel, report and plots written to {result['output']}/")
    for split in ("train", "validation", "test"):
        if split in m:
            cut, over = m[split].get("truncated"), m[split].get("over_max_length")
            long = f", {cut} truncated" if cut else f", {over} read in windows" if over else ""
            print(f"  {split:<10} {headline(m[split])}  (n={m[split]['n']}{long})")
    print(f"  training took {m['train_seconds']:.1f} s; report: {result['output']}/report.md")
    return 0
