"""What `--quantize int8` costs and gains, side by side with fp32 on the same trained model:
test accuracy, label agreement with fp32 and prediction texts/s, for the default encoder
(SST-2, TREC) and the default decoder (SMS spam), each trained with its recipe's options.

    python bench/int8.py                 # sst2, trec (minilm-l6), sms-spam (smollm2-135m): ~15 min
    python bench/int8.py --only sms-spam

Timing: fp32 and int8 predict the test split alternately, three times each; the best
texts/s of each is kept (this machine is shared and noisy). Writes bench/results/int8.json
and int8.md.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import md_table, recipe_split, write_results  # noqa: E402

# recipe -> (model, predict batch size); batch 8 on the decoder as in bench/speed.py
CASES = {"sst2": ("minilm-l6", 64), "trec": ("minilm-l6", 64), "sms-spam": ("smollm2-135m", 8)}
SEED = 123


def _texts_per_second(clf, texts: list) -> tuple[list, float]:
    t0 = time.perf_counter()
    labels = clf.predict(texts)
    return labels, len(texts) / (time.perf_counter() - t0)


def run_case(recipe: str, model: str, batch: int) -> dict:
    from lmclassify import TextClassifier
    from lmclassify.cli import main

    _, _, test = recipe_split(recipe, SEED)
    gold = [str(y) for y in test.labels]
    acc = lambda labels: sum(str(a) == b for a, b in zip(labels, gold)) / len(gold)  # noqa: E731
    with tempfile.TemporaryDirectory() as d:
        if main(["train", "--recipe", recipe, "--model", model, "--output", f"{d}/m", "--seed", str(SEED)]) != 0:
            raise SystemExit(f"train --recipe {recipe} failed")
        fp32 = TextClassifier.load(Path(d, "m"), device="cpu")
        int8 = TextClassifier.load(Path(d, "m"), device="cpu", quantize="int8")
        rates: dict = {"fp32": [], "int8": []}
        labels = {}
        for clf in (fp32, int8):
            clf.train_config_.eval_batch_size = batch
            clf.predict(test.texts[:batch])  # warm-up
        for _ in range(3):
            for name, clf in (("fp32", fp32), ("int8", int8)):
                labels[name], rate = _texts_per_second(clf, test.texts)
                rates[name].append(rate)
    return {"recipe": recipe, "model": model, "batch_size": batch, "n_test": len(gold),
            "fp32_accuracy": acc(labels["fp32"]), "int8_accuracy": acc(labels["int8"]),
            "label_agreement": sum(a == b for a, b in zip(labels["fp32"], labels["int8"])) / len(gold),
            "fp32_texts_per_second": max(rates["fp32"]), "int8_texts_per_second": max(rates["int8"]),
            "speedup": max(rates["int8"]) / max(rates["fp32"]), "all_rates": rates}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help=f"comma list of recipes ({','.join(CASES)})")
    ap.add_argument("--output", type=Path)
    a = ap.parse_args()
    names = a.only.split(",") if a.only else list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise SystemExit(f"unknown recipe(s): {', '.join(unknown)}; choose from {', '.join(CASES)}")
    results = []
    for name in names:
        print(f"... {name}", flush=True)
        results.append(run_case(name, *CASES[name]))
        print(f"    {results[-1]}", flush=True)
    rows = [[r["recipe"], r["model"], r["n_test"], f"{100 * r['fp32_accuracy']:.2f}", f"{100 * r['int8_accuracy']:.2f}",
             f"{100 * r['label_agreement']:.1f}", round(r["fp32_texts_per_second"], 1),
             round(r["int8_texts_per_second"], 1), round(r["speedup"], 2)] for r in results]
    table = ("## int8 vs fp32 prediction, same trained model, this CPU\n\n"
             + md_table(["recipe", "model", "test texts", "fp32 acc %", "int8 acc %", "labels agree %",
                         "fp32 texts/s", "int8 texts/s", "int8 / fp32"], rows))
    path = write_results("int8", {"seed": SEED, "cases": results}, table, a.output)
    print(table)
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
