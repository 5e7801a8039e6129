"""LoRA (``--train-layers lora``) beside training whole blocks, in one run: test metric,
training time, trainable parameters and peak RSS of each configuration, each trained in
its own process (its own peak RSS) on the same data.

    python bench/lora.py [--spam-train 64] [--spam-test 150] [--spam-epochs 2] [--sst2-train 500]
                         [--sst2-test 0] [--sst2-epochs 2]

SMS spam on the default decoder (smollm2-135m) and SST-2 on the default encoder
(minilm-l6), each on seeded, class-balanced subsamples of the recipe's training and test
splits (sizes above, 0 = the whole split; the full splits are out of reach of a shared
2-core CPU for the full-depth configurations). No validation split: every configuration
trains its epochs and keeps its last weights, so the comparison is the training itself.
Every other option is the family's default (the LoRA learning rate is 10x the family's).
The two data sets run side by side (two processes at a time), each one's configurations
one after the other.

Writes bench/results/lora.json and lora.md.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import md_table, peak_rss_mb, recipe_split, run_child, write_results  # noqa: E402

# (name, estimator options) per data set; K for "LoRA (top K)" is a few blocks of the model's depth.
CONFIGS = {
    "sms-spam": ("smollm2-135m", [
        ("last block", {"train_layers": 1}),
        ("all blocks", {"train_layers": "all"}),
        ("LoRA (all blocks)", {"train_layers": "lora"}),
        ("LoRA (top 4 of 30)", {"train_layers": "lora", "lora_layers": 4}),
    ]),
    "sst2": ("minilm-l6", [
        ("last block", {"train_layers": 1}),
        ("all blocks", {"train_layers": "auto"}),  # every block, embeddings frozen: the encoder default
        ("LoRA (all blocks)", {"train_layers": "lora"}),
        ("LoRA (top 2 of 6)", {"train_layers": "lora", "lora_layers": 2}),
    ]),
}


def subsample(examples, n: int, seed: int = 0) -> tuple[list, list]:
    """``n`` examples, as many of each class as possible, in a seeded order."""
    rng = random.Random(seed)
    by_class: dict = {}
    for x, y in zip(examples.inputs(), examples.labels):
        by_class.setdefault(y, []).append(x)
    for xs in by_class.values():
        rng.shuffle(xs)
    per = n // len(by_class)
    pairs = [(x, y) for y, xs in sorted(by_class.items()) for x in xs[:per]]
    rng.shuffle(pairs)
    return [x for x, _ in pairs], [y for _, y in pairs]


def child(recipe: str, index: int, n_train: int, n_test: int, epochs: int, max_length: int) -> dict:
    from lmclassify import TextClassifier

    model, configs = CONFIGS[recipe]
    name, options = configs[index]
    train, _, test = recipe_split(recipe)
    X, y = subsample(train, n_train)
    Xt, yt = subsample(test, n_test) if n_test else (test.inputs(), test.labels)
    clf = TextClassifier(model, epochs=epochs, max_length=max_length, keep_best=False, progress=False, **options)
    t0 = time.perf_counter()
    clf.fit(X, y)
    fit_seconds = time.perf_counter() - t0
    train_rss = peak_rss_mb()
    t0 = time.perf_counter()
    m = clf.evaluate(Xt, yt)
    return {"recipe": recipe, "model": model, "config": name, "options": options, "train_texts": len(X),
            "test_texts": len(Xt), "epochs": epochs, "max_length": max_length,
            "learning_rate": clf.train_config_.learning_rate, "test_accuracy": m["accuracy"],
            "test_f1_macro": m["f1_macro"], "train_seconds": clf.train_seconds_, "fit_seconds": fit_seconds,
            "test_seconds": time.perf_counter() - t0, "trainable_parameters": clf.parameter_counts_["trainable"],
            "total_parameters": clf.parameter_counts_["total"], "feature_cache": clf.feature_cache_,
            "peak_rss_mb_training": train_rss, "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spam-train", type=int, default=64)
    ap.add_argument("--spam-test", type=int, default=150)
    ap.add_argument("--spam-epochs", type=int, default=2)
    ap.add_argument("--sst2-train", type=int, default=500)
    ap.add_argument("--sst2-test", type=int, default=0)
    ap.add_argument("--sst2-epochs", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--only", help="comma-separated recipes (default: both)")
    ap.add_argument("--output", type=Path)
    ap.add_argument("--from-log", type=Path, help="write the results from the JSON lines a cut-short run printed")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--index", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    sizes = {"sms-spam": (a.spam_train, a.spam_test, a.spam_epochs), "sst2": (a.sst2_train, a.sst2_test, a.sst2_epochs)}
    if a.child:
        print(json.dumps(child(a.child, a.index, *sizes[a.child], a.max_length)))
        return
    t0 = time.perf_counter()
    args = [f"--{k.replace('_', '-')}={v}" for k, v in vars(a).items()
            if k.startswith(("spam_", "sst2_", "max_length")) and v is not None]

    def one_recipe(recipe: str) -> list[dict]:
        out = []
        for i in range(len(CONFIGS[recipe][1])):
            out.append(run_child(Path(__file__), ["--child", recipe, "--index", str(i), *args], 3600))
            print(json.dumps(out[-1]), flush=True)
        return out

    if a.from_log:  # a run cut short: its children's JSON lines
        lines = [json.loads(x) for x in a.from_log.read_text().splitlines() if x.startswith('{"recipe"')]
        by_recipe = {}
        for r in lines:
            by_recipe.setdefault(r["recipe"], []).append(r)
    else:
        recipes = a.only.split(",") if a.only else list(CONFIGS)
        with ThreadPoolExecutor(max_workers=len(recipes)) as pool:
            by_recipe = dict(zip(recipes, pool.map(one_recipe, recipes)))
    runs, sections = [r for rs in by_recipe.values() for r in rs], []
    for recipe, rs in by_recipe.items():
        full = next((r for r in rs if r["config"] == "all blocks"), None)
        ratio = lambda r, key: f"{r[key] / full[key]:.2f}" if full else "—"  # noqa: E731
        rows = [[r["config"], round(100 * r["test_accuracy"], 2), round(r["train_seconds"], 1),
                 f"{r['trainable_parameters']:,}", round(r["peak_rss_mb_training"]),
                 ratio(r, "peak_rss_mb_training"), ratio(r, "train_seconds"), f"{r['learning_rate']:g}",
                 "yes" if r["feature_cache"] else "no"] for r in rs]
        sections.append(f"## {recipe}, {rs[0]['model']}: {rs[0]['train_texts']} training texts, {rs[0]['test_texts']} "
                        f"test texts (class-balanced subsamples of the recipe's splits, seed 0), {rs[0]['epochs']} "
                        f"epochs, max length {rs[0]['max_length']}\n\n"
                        + md_table(["configuration", "test accuracy %", "train s", "trainable parameters",
                                    "peak RSS MB (training)", "RSS / all blocks", "time / all blocks",
                                    "learning rate", "feature cache"], rows))
    table = "\n\n".join(sections) + ("" if a.from_log else f"\n\nWhole benchmark: {time.perf_counter() - t0:.0f} s.")
    path = write_results("lora", {"runs": runs, "sizes": sizes, "max_length": a.max_length}, table, a.output)
    print(table)
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
