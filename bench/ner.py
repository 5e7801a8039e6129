"""Token classification on wnut17 with the default encoder (minilm-l6, the recipe's tuned
options): entity-level F1 on the test set (target >= 0.35), wall time and peak RAM, with
and without the CRF. Each variant trains in its own process (its own peak RSS).

    python bench/ner.py [--variants softmax,crf] [--seed 123] [-- extra train-tokens options]

Writes bench/results/ner.json and ner.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import md_table, peak_rss_mb, run_child, write_results  # noqa: E402

VARIANTS = {"softmax": [], "crf": ["--crf"]}
TARGET = 0.35


def child(variant: str, seed: int, extra: list[str]) -> dict:
    from lmclassify.cli import main

    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        rc = main(["train-tokens", "--recipe", "wnut17", "--seed", str(seed), "--output", f"{d}/m",
                   *VARIANTS[variant], *extra])
        wall = time.perf_counter() - t0
        assert rc == 0
        m = json.loads(Path(d, "m", "metrics.json").read_text())
        cfg = json.loads(Path(d, "m", "training_config.json").read_text())
    t, v = m["test"], m["validation"]
    return {"variant": variant, "seed": seed, "test_entity_f1": t["entity_f1"],
            "test_entity_precision": t["entity_precision"], "test_entity_recall": t["entity_recall"],
            "test_token_accuracy": t["token_accuracy"], "test_f1_macro": t["f1_macro"],
            "validation_entity_f1": v["entity_f1"],
            "test_per_type_f1": {k: c["f1"] for k, c in t["per_class"].items()},
            "train_seconds": m["train_seconds"], "steps": m["steps"], "best_step": m["best_step"],
            "job_seconds": wall, "peak_rss_mb": peak_rss_mb(), "config": cfg}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default="softmax,crf")
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--output", type=Path)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("extra", nargs="*", help="extra train-tokens options (after --)")
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.seed, a.extra)))
        return
    runs = [run_child(Path(__file__), ["--child", v, "--seed", str(a.seed), "--", *a.extra], 3600)
            for v in a.variants.split(",")]
    model = runs[0]["config"]["model"]["name"]
    out = {"model": model, "recipe": "wnut17", "target_test_entity_f1": TARGET, "runs": runs,
           "meets_target": all(r["test_entity_f1"] >= TARGET for r in runs)}
    rows = [[r["variant"], round(r["test_entity_f1"], 4), round(r["test_entity_precision"], 4),
             round(r["test_entity_recall"], 4), round(r["validation_entity_f1"], 4), round(r["train_seconds"], 1),
             round(r["wall_seconds"], 1), round(r["peak_rss_mb"])] for r in runs]
    tc = runs[0]["config"]
    setup = (f"train_layers {tc['model']['train_layers']}, {tc['train']['epochs']} epochs, batch "
             f"{tc['train']['batch_size']}, lr {tc['train']['learning_rate']}, {tc['train']['schedule']} schedule")
    table = (f"## wnut17 NER, {model} ({setup}; seed {a.seed})\n\n"
             + md_table(["variant", "test entity F1", "precision", "recall", "dev entity F1", "train s", "wall s",
                         "peak RSS MB"], rows)
             + f"\n\nentity-level F1 (seqeval, conlleval rules) on the 1,287 test sentences; target {TARGET}."
             + "\nWall time includes loading, the feature cache, training and scoring all three splits.")
    path = write_results("ner", out, table, a.output)
    print(table)
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
