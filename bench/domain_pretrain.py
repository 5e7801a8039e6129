"""Domain pretraining on TREC: continued MLM on the recipe's training texts, then the
recipe, against the recipe alone, same seed (the two classifiers side by side).

TREC rather than GoEmotions: its 4,907 training questions are short (an MLM epoch with
minilm-l6 takes minutes on an idle 2-core CPU, and the recipe runs twice), and it is a single-label
task with an exact metric, so a change shows in test accuracy without threshold tuning (GoEmotions'
58k Reddit comments and per-label thresholds would not fit the time). Only the training split's
texts are pretrained on (the validation split gives the MLM validation loss); the test
split is never seen before it is scored.

    OMP_NUM_THREADS=1 python bench/domain_pretrain.py [--mlm-epochs 1] [--recipe-epochs N]

The committed result ran the MLM, then (in a second invocation, the machine being loaded)
`--mlm-dir <that output> --recipe-epochs 1`: see the .md for exactly what ran.

Writes bench/results/domain_pretrain.json and domain_pretrain.md.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, md_table, write_results  # noqa: E402


NOTE = """

Smaller than planned, honestly: the machine (2 cores) was shared with several other benchmarks (load
average ~11), so each process got ~10 % of a core; the recipe's 3 epochs per classifier did not fit
the time left, and both classifiers were trained for the epochs stated above instead (the same for
both arms, so the comparison stays like for like; absolute accuracies are below the 3-epoch recipe's)."""


def outcome(runs: dict) -> str:
    """One sentence on what the pretraining changed on the test split."""
    alone, after = runs["recipe alone"]["test_accuracy"], runs["MLM, then recipe"]["test_accuracy"]
    n = round((after - alone) * 500)
    return (f"Outcome at this budget: MLM first changed test accuracy by {after - alone:+.1%} ({n:+d} of 500 "
            f"questions). all-MiniLM-L6-v2 was tuned contrastively for sentence embeddings, and a masked-LM "
            f"epoch at lr 1e-4 on every weight, with its head starting from random, pulls the encoder back "
            f"toward token prediction; TREC's short questions are also not far from its training text. A "
            f"head-only warm-up, a lower learning rate or a model shipped with its MLM head (BERT, RoBERTa) "
            f"are the obvious next tries; this run does not show a gain.")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mlm-epochs", type=int, default=1)
    ap.add_argument("--recipe-epochs", type=int, help="train both classifiers this many epochs (default: the "
                                                      "recipe's 3)")
    ap.add_argument("--mlm-dir", help="a finished `lmclassify pretrain` output of this very run to reuse "
                                      "(its metrics.json and pretrain_config.json are reported)")
    ap.add_argument("--seed", type=int, default=123)
    a = ap.parse_args()

    import torch

    from lmclassify.config import DataConfig, ModelConfig, PretrainRunConfig, TrainConfig
    from lmclassify.jobs.pretrain import pretrain

    runs: dict = {}
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        if a.mlm_dir:
            lm = Path(a.mlm_dir)
            p = {"metrics": json.loads((lm / "metrics.json").read_text()),
                 "config": json.loads((lm / "pretrain_config.json").read_text())}
        else:
            lm = Path(d) / "trec-mlm"
            pcfg = PretrainRunConfig(model=ModelConfig(name="minilm-l6", max_length=48),
                                     data=DataConfig(recipe="trec"),
                                     train=TrainConfig(epochs=a.mlm_epochs, seed=a.seed))
            p = pretrain(pcfg, lm, progress=True)
        mlm = p["metrics"]
        mlm_seconds = time.perf_counter() - t0
        # Both classifiers train at once, each in its own process on one torch thread
        # (what each would compute alone; only their wall times suffer from sharing).
        arms = {"recipe alone": "minilm-l6", "MLM, then recipe": str(lm)}
        procs = {}
        for k, (name, model) in enumerate(arms.items()):
            cmd = [sys.executable, "-m", "lmclassify", "train", "--recipe", "trec", "--model", model,
                   "--seed", str(a.seed), "--output", str(Path(d) / f"clf{k}")]
            if a.recipe_epochs:
                cmd += ["--epochs", str(a.recipe_epochs)]
            procs[name] = (subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True),
                           Path(d) / f"clf{k}", time.perf_counter())
        for name, (proc, out, t1) in procs.items():
            _, err = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"{name} failed:\n{err[-3000:]}")
            m = json.loads((out / "metrics.json").read_text())
            cfg = json.loads((out / "training_config.json").read_text())
            runs[name] = {"test_accuracy": m["test"]["accuracy"], "test_f1_macro": m["test"]["f1_macro"],
                          "validation_accuracy": m["validation"]["accuracy"], "steps": m["steps"],
                          "epochs": cfg["train"]["epochs"], "train_seconds": m["train_seconds"],
                          "wall_seconds": round(time.perf_counter() - t1, 1)}
    result = {
        "recipe": "trec", "model": "minilm-l6", "seed": a.seed, "threads": torch.get_num_threads(),
        "mlm": {"epochs": p["config"]["train"]["epochs"], "reused": bool(a.mlm_dir), "config": p["config"], "validation_before": mlm["validation_before"],
                "validation_after": mlm["validation"], "train_texts": mlm["train_texts"],
                "validation_texts": mlm["validation_texts"], "steps": mlm["steps"],
                "train_seconds": mlm["train_seconds"],
                "wall_seconds": None if a.mlm_dir else round(mlm_seconds, 1)},
        "classifier": runs, "machine": machine(),
    }
    b, f = mlm["validation_before"], mlm["validation"]
    tc = p["config"]["train"]
    epochs = a.recipe_epochs or 3
    mlm_table = md_table(["MLM on TREC train texts", "validation loss", "perplexity", "masked tokens"],
                         [["before (minilm-l6 as shipped)", b["loss"], b["perplexity"], b["tokens"]],
                          [f"after {tc['epochs']} epoch(s), {mlm['steps']} steps", f["loss"], f["perplexity"],
                           f["tokens"]]])
    clf_table = md_table(["trec recipe (minilm-l6, seed %d)" % a.seed, "test accuracy", "test macro F1",
                          "validation accuracy", "epochs", "steps"],
                         [[k, v["test_accuracy"], v["test_f1_macro"], v["validation_accuracy"], v["epochs"],
                           v["steps"]]
                          for k, v in runs.items()])
    mc = result["machine"]
    text = f"""# Domain pretraining: TREC, masked LM then the recipe vs the recipe alone

What ran: `lmclassify pretrain --recipe trec --model minilm-l6 --max-length 48 --epochs {tc['epochs']}
--seed {a.seed}` (masked LM, 15 % of tokens chosen, 80/10/10; batch {tc['batch_size']}, lr {tc['learning_rate']},
{tc['schedule']} schedule, {tc['warmup_ratio']} warmup, every weight trained) on the {mlm['train_texts']} training
questions, validation loss on the {mlm['validation_texts']} validation questions (the same masks before and
after); then `lmclassify train --recipe trec --seed {a.seed}{' --epochs ' + str(epochs) if a.recipe_epochs else ''}` once
with `--model` the pretrained directory and once with `minilm-l6`, everything else identical (the two
runs side by side, each in its own process on one torch thread). One run each; the test split (500
questions) is never seen before it is scored.{NOTE if a.recipe_epochs else ''}

{mlm_table}

{clf_table}

{outcome(runs)}

MLM: {mlm['train_seconds']:.0f} s of training on a machine shared with other jobs (times are not comparable).

Caveat on "before": all-MiniLM-L6-v2 ships without its MLM head (sentence-transformers keeps only the
encoder), so transformers initialises the head's transform layer (seeded) and ties its decoder to the
word embeddings; the "before" loss is that of the untrained head over the shipped encoder, and much of
the drop is the head being learnt, not the encoder adapting. The classifier runs show what the encoder
itself gained. One seed: a difference of a few test questions (0.2 % each) is within seed noise.

Machine: {mc.get('summary', mc)}
"""
    out = write_results("domain_pretrain", result, text)
    print(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
