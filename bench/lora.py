"""LoRA (``--train-layers lora``) beside training whole blocks, in one run: test metric,
training time, trainable parameters and peak RSS of each configuration, each trained in
its own process (its own peak RSS) on the same data.

    python bench/lora.py [--spam-train 64] [--spam-test 150] [--spam-epochs 2] [--sst2-train 500]
                         [--sst2-test 0] [--sst2-epochs 2] [--dec-train 2000] [--dec-test 1000]
    python bench/lora.py --only sst2-decoder --sequential      # one data set; other rows kept
    python bench/lora.py --only sms-spam --configs "LoRA (all blocks) + checkpointing"

SMS spam on the default decoder (smollm2-135m), SST-2 on the default encoder (minilm-l6) and
SST-2 on the default decoder ("sst2-decoder"), each on seeded, class-balanced subsamples of
the recipe's training and test splits (sizes above, 0 = the whole split; the full splits are
out of reach of a shared 2-core CPU for the full-depth configurations, which on
sst2-decoder run as memory probes: see PROBE). No validation split: every configuration
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
from common import RESULTS, md_table, peak_rss_mb, recipe_split, run_child, write_results  # noqa: E402

# (name, estimator options) per data set; K for "LoRA (top K)" is a few blocks of the model's depth.
# PROBE: a memory-only run (the PROBE_TEXTS longest training texts, one epoch, no test):
# peak memory is set by the longest batch, not by how many batches there are, and at full
# depth the whole subsample is out of reach of this CPU.
PROBE = "memory_probe"
PROBE_TEXTS = 64
CONFIGS = {
    "sms-spam": ("smollm2-135m", [
        ("last block", {"train_layers": 1}),
        ("all blocks", {"train_layers": "all"}),
        ("LoRA (all blocks)", {"train_layers": "lora"}),
        ("LoRA (top 4 of 30)", {"train_layers": "lora", "lora_layers": 4}),
        ("LoRA (all blocks) + checkpointing", {"train_layers": "lora", "gradient_checkpointing": True}),
    ]),
    # the recipe's whole splits, 5 epochs: the ">= 98.3 %" is a full-size figure
    "sms-spam-full": ("smollm2-135m", [
        ("last block", {"train_layers": 1}),
        ("LoRA (top 4 of 30)", {"train_layers": "lora", "lora_layers": 4}),
    ]),
    "sst2": ("minilm-l6", [
        ("last block", {"train_layers": 1}),
        ("all blocks", {"train_layers": "auto"}),  # every block, embeddings frozen: the encoder default
        ("LoRA (all blocks)", {"train_layers": "lora"}),
        ("LoRA (top 2 of 6)", {"train_layers": "lora", "lora_layers": 2}),
    ]),
    "sst2-decoder": ("smollm2-135m", [
        ("last block", {"train_layers": 1}),
        ("LoRA (top 4 of 30)", {"train_layers": "lora", "lora_layers": 4}),
        ("LoRA (top 8 of 30)", {"train_layers": "lora", "lora_layers": 8}),
        ("all blocks", {"train_layers": "all", PROBE: True}),
        ("LoRA (all blocks) + checkpointing", {"train_layers": "lora", "gradient_checkpointing": True, PROBE: True}),
    ]),
}
DATA = {"sst2-decoder": "sst2", "sms-spam-full": "sms-spam"}  # the recipe whose splits a data set reads (default: its own name)


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
    options = dict(options)
    probe = options.pop(PROBE, False)
    train, _, test = recipe_split(DATA.get(recipe, recipe))
    X, y = subsample(train, n_train) if n_train else (train.inputs(), train.labels)
    if probe:  # the longest texts: the batches that set the peak
        longest = sorted(range(len(X)), key=lambda i: -len(str(X[i])))[:PROBE_TEXTS]
        X, y, epochs = [X[i] for i in longest], [y[i] for i in longest], 1
    Xt, yt = subsample(test, n_test) if n_test else (test.inputs(), test.labels)
    clf = TextClassifier(model, epochs=epochs, max_length=max_length, keep_best=False, progress=False, **options)
    t0 = time.perf_counter()
    clf.fit(X, y)
    fit_seconds = time.perf_counter() - t0
    train_rss = peak_rss_mb()
    t0 = time.perf_counter()
    m = {"accuracy": None, "f1_macro": None} if probe else clf.evaluate(Xt, yt)
    return {"recipe": recipe, "model": model, "config": name, "options": options, "memory_probe": probe,
            "train_texts": len(X), "test_texts": 0 if probe else len(Xt), "epochs": epochs, "max_length": max_length,
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
    ap.add_argument("--dec-train", type=int, default=2000, help="sst2-decoder training texts")
    ap.add_argument("--dec-test", type=int, default=1000, help="sst2-decoder test texts")
    ap.add_argument("--dec-epochs", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--only", help=f"comma-separated data sets (default: all of {', '.join(CONFIGS)})")
    ap.add_argument("--configs", help="comma-separated configuration names to run; the other rows of those data "
                                      "sets are kept from the previous results (marked so)")
    ap.add_argument("--sequential", action="store_true", help="one data set after the other, not side by side")
    ap.add_argument("--output", type=Path)
    ap.add_argument("--from-log", type=Path, help="write the results from the JSON lines a cut-short run printed")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--index", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    sizes = {"sms-spam": (a.spam_train, a.spam_test, a.spam_epochs), "sst2": (a.sst2_train, a.sst2_test, a.sst2_epochs),
             "sst2-decoder": (a.dec_train, a.dec_test, a.dec_epochs), "sms-spam-full": (0, 0, 5)}
    if a.child:
        print(json.dumps(child(a.child, a.index, *sizes[a.child], a.max_length)))
        return
    t0 = time.perf_counter()
    args = [f"--{k.replace('_', '-')}={v}" for k, v in vars(a).items()
            if k.startswith(("spam_", "sst2_", "dec_", "max_length")) and v is not None]
    wanted = set(a.configs.split(",")) if a.configs else None

    def one_recipe(recipe: str) -> list[dict]:
        out = []
        for i, (name, _) in enumerate(CONFIGS[recipe][1]):
            if wanted is None or name in wanted:
                out.append(run_child(Path(__file__), ["--child", recipe, "--index", str(i), *args], 3600))
                print(json.dumps(out[-1]), flush=True)
        return out

    previous_path = a.output or RESULTS / "lora.json"
    previous = json.loads(previous_path.read_text())["runs"] if previous_path.is_file() else []
    if a.from_log:  # a run cut short: its children's JSON lines
        new_runs = [json.loads(x) for x in a.from_log.read_text().splitlines() if x.startswith('{"recipe"')]
    else:
        recipes = a.only.split(",") if a.only else list(CONFIGS)
        with ThreadPoolExecutor(max_workers=1 if a.sequential else len(recipes)) as pool:
            new_runs = [r for rs in pool.map(one_recipe, recipes) for r in rs]
    runs = merge_runs(previous, new_runs)
    table = render(runs) + ("" if a.from_log else f"\n\nThis run: {time.perf_counter() - t0:.0f} s.")
    path = write_results("lora", {"runs": runs, "sizes": sizes, "max_length": a.max_length}, table, a.output)
    print(table)
    print(f"\nwritten {path}")


def merge_runs(previous: list[dict], new: list[dict]) -> list[dict]:
    """The new rows, and the previous rows of every (data set, configuration) not rerun,
    marked as from an earlier run; in CONFIGS order."""
    fresh = {(r["recipe"], r["config"]) for r in new}
    kept = [{**r, "previous_run": True} for r in previous if (r["recipe"], r["config"]) not in fresh]
    order = {(rec, name): 100 * i + j for i, (rec, (_, cs)) in enumerate(CONFIGS.items())
             for j, (name, _) in enumerate(cs)}
    return sorted(kept + [{**r, "previous_run": False} for r in new],
                  key=lambda r: order.get((r["recipe"], r["config"]), 10**6))


def render(runs: list[dict]) -> str:
    sections = []
    for recipe in dict.fromkeys(r["recipe"] for r in runs):
        rs = [r for r in runs if r["recipe"] == recipe]
        full = next((r for r in rs if r["config"] == "all blocks"), None)
        ratio = lambda r, key: f"{r[key] / full[key]:.2f}" if full and key in r and key in full else "—"  # noqa: E731
        rows = [[r["config"] + (" (memory probe)" if r.get("memory_probe") else "")
                 + (" *" if r.get("previous_run") else ""),
                 "—" if r["test_accuracy"] is None else round(100 * r["test_accuracy"], 2),
                 round(r["train_seconds"], 1), f"{r['trainable_parameters']:,}", round(r["peak_rss_mb_training"]),
                 ratio(r, "peak_rss_mb_training"),
                 f"{r['train_seconds'] / (r['train_texts'] * r['epochs']):.3f}",
                 f"{r['learning_rate']:g}", "yes" if r["feature_cache"] else "no"] for r in rs]
        main = next((r for r in rs if not r.get("memory_probe")), rs[0])
        sections.append(f"## {recipe}, {main['model']}: {main['train_texts']} training texts, {main['test_texts']} "
                        f"test texts (class-balanced subsamples of the recipe's splits, seed 0), {main['epochs']} "
                        f"epochs, max length {main['max_length']}\n\n"
                        + md_table(["configuration", "test accuracy %", "train s", "trainable parameters",
                                    "peak RSS MB (training)", "RSS / all blocks", "train s per text and epoch",
                                    "learning rate", "feature cache"], rows))
    notes = []
    if any(r.get("memory_probe") for r in runs):
        notes.append(f"(memory probe): trained one epoch on the {PROBE_TEXTS} longest texts of the same subsample, "
                     "for its peak memory only (the longest batches set the peak; no test).")
    if any(r.get("previous_run") for r in runs):
        notes.append("*: from an earlier run of this benchmark (kept; its time is not side by side with this run's).")
    return "\n\n".join(sections + ["\n".join(notes)] if notes else sections)


if __name__ == "__main__":
    main()
