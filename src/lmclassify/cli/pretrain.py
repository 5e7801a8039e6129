"""`lmclassify pretrain`: continue a model's pretraining on unlabelled text (masked LM for
encoders, causal LM for decoders) and write a model directory that `train --model` fine-tunes.

  lmclassify pretrain --data reviews.csv --model minilm-l6 --output runs/reviews-mlm
  lmclassify train --data reviews.csv --label-column stars --model runs/reviews-mlm -o runs/reviews
  lmclassify pretrain --data notes.txt --model smollm2-135m --output runs/notes-lm --epochs 2
  lmclassify pretrain --recipe trec --whole-word-mask --mlm-probability 0.2 -o runs/trec-mlm
  lmclassify pretrain --resume runs/trec-mlm     # continue a run that was killed or stopped with Ctrl-C

A .txt file is one text per line; a CSV/JSONL/Parquet file gives its --text-column (labels,
if any, are ignored). One file is split 90/10 (--split) for the validation loss; a recipe gives
its training texts (its validation texts for the loss; never its test texts). The model defaults
to the recipe's, else minilm-l6; options nobody gave: 1 epoch, every weight trained, max length
128 (encoders; lr 1e-4, batch 32) or 256 (decoders; lr 5e-5, batch 8).
"""
from __future__ import annotations

import argparse

from ..config import PRETRAIN_OPTIONS, PretrainRunConfig
from .options import add_field_options, add_output


def add_parser(sub) -> None:
    p = sub.add_parser("pretrain", help="continue MLM / causal-LM pretraining on unlabelled text",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resume", nargs="?", const=True, metavar="OUTPUT",
                   help="continue an interrupted run exactly where it stopped (its output, or OUTPUT.partial); "
                        "options given must equal the run's")
    for section, cls in PretrainRunConfig.SECTIONS.items():
        add_field_options(p.add_argument_group(section), section, cls, PRETRAIN_OPTIONS.get(section))
    add_output(p, required=False)
    p.set_defaults(func=run)


def config_from_args(a: argparse.Namespace) -> PretrainRunConfig:
    """The options typed, by section; the rest keep their declared defaults."""
    given: dict[str, dict] = {s: {} for s in PretrainRunConfig.SECTIONS}
    for key, value in vars(a).items():
        section, _, name = key.partition(".")
        if name and section in given:
            given[section][name] = value
    sources = [k for k in ("recipe", "data", "train") if given["data"].get(k)]
    if len(sources) > 1:
        from ..errors import LmClassifyError

        raise LmClassifyError(f"pass only one data source, not {' and '.join('--' + k for k in sources)}")
    return PretrainRunConfig.from_dict(given, "options")


def run(a: argparse.Namespace) -> int:
    from ..errors import LmClassifyError
    from ..jobs.pretrain import pretrain
    from ..jobs.rundir import output_of

    output = a.output
    if isinstance(a.resume, str):
        output = output or str(output_of(a.resume))
    if not output:
        raise LmClassifyError("name the model directory to write: --output DIR")
    config = config_from_args(a)
    given = any("." in key for key in vars(a))  # an option typed (untyped ones are absent)
    result = pretrain(config if given or not a.resume else None, output, overwrite=a.overwrite,
                      resume=bool(a.resume))
    m = result["metrics"]
    print(f"\nmodel and tokenizer written to {result['output']}/ (fine-tune it: lmclassify train --model "
          f"{result['output']} ...)")
    before, after = m.get("validation_before"), m.get("validation")
    if before and after:
        print(f"  validation loss {before['loss']:.4f} -> {after['loss']:.4f}  "
              f"(perplexity {before['perplexity']:.2f} -> {after['perplexity']:.2f}, {after['tokens']} tokens)")
    print(f"  {m['steps']} steps on {m['train_texts']} texts in {m['train_seconds']:.1f} s")
    return 0
