"""Every task shape on its benchmark recipe with the default encoder (minilm-l6) on this
machine's CPU: the recipe's metric against its target, wall time, CPU time and peak RAM;
then pooling modes compared on SST-2, and optionally SST-2 + MRPC with the default
decoder (smollm2-135m).

    python bench/tasks.py                              # recipes + pooling (~40 min CPU on 2 cores)
    python bench/tasks.py --only sst2,trec --no-pooling
    python bench/tasks.py --layers 2,3,6               # + SST-2 at several --train-layers
    python bench/tasks.py --decoder                    # + smollm2-135m on SST-2 and MRPC (slow)

Each run is a child process (its own peak RSS and CPU time) running the real CLI,
`lmclassify train --recipe NAME --model minilm-l6`, with the recipe's own options.
Writes bench/results/tasks.json and tasks.md.
"""
from __future__ import annotations

import argparse
import json
import resource
import shlex
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import md_table, peak_rss_mb, run_child, write_results  # noqa: E402

ENCODER, DECODER = "minilm-l6", "smollm2-135m"
RECIPES = ("sst2", "trec", "mrpc", "rte", "stsb", "goemotions")
TARGETS = {"sst2": 0.88, "trec": 0.95, "mrpc": 0.85, "rte": 0.60, "stsb": 0.85, "goemotions": 0.40}
POOLINGS = ("mean", "attention")  # cls is the encoder default: the main SST-2 run
# The decoder reads the last token through its last block (its defaults), on shorter texts.
DECODER_OPTIONS = {"sst2": ["--max-length", "64"], "mrpc": ["--max-length", "128"]}


def child_train(recipe: str, model: str, extra: list[str]) -> dict:
    from lmclassify.cli import main
    from lmclassify.data.recipes import get_recipe

    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        rc = main(["train", "--recipe", recipe, "--model", model, "--output", f"{d}/m", *extra])
        wall = time.perf_counter() - t0
        if rc != 0:
            raise SystemExit(f"train --recipe {recipe} failed with status {rc}")
        m = json.loads(Path(d, "m", "metrics.json").read_text())
        cfg = json.loads(Path(d, "m", "training_config.json").read_text())
        meta = json.loads(Path(d, "m", "lmclassify.json").read_text())
    split, key = get_recipe(recipe).metric
    keys = ("accuracy", "f1", "f1_micro", "f1_macro", "pearson", "spearman", "loss")
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "recipe": recipe, "model": model, "options": extra, "task": m["task"],
        "metric": f"{key} ({split})", "value": m[split][key],
        "splits": {s: {k: m[s][k] for k in keys if k in m[s]} for s in ("train", "validation", "test") if s in m},
        "pooling": cfg["model"]["pooling"], "train_layers": cfg["model"]["train_layers"],
        "transformers_compatible": meta["transformers_compatible"], "epochs": cfg["train"]["epochs"],
        "max_length": cfg["model"]["max_length"], "learning_rate": cfg["train"]["learning_rate"],
        "parameters": m["parameters"], "feature_cache": m["feature_cache"], "steps": m["steps"],
        "best_step": m["best_step"], "train_seconds": m["train_seconds"], "wall_seconds": round(wall, 1),
        "precisions_ran": {"feature_precision": cfg["train"].get("feature_precision")},
        "cpu_seconds": round(ru.ru_utime + ru.ru_stime, 1), "peak_rss_mb": round(peak_rss_mb()),
    }


def _run(recipe: str, model: str, extra: list[str]) -> dict:
    print(f"... {recipe} {model} {' '.join(extra)}", flush=True)
    r = run_child(Path(__file__), ["--child", recipe, "--model", model, "--extra", shlex.join(extra)], 7200)
    print(f"    {r['metric']} {r['value']:.4f}  wall {r['wall_seconds']:.0f} s  cpu {r['cpu_seconds']:.0f} s", flush=True)
    return r


def _fmt(v: float) -> str:
    return f"{v:.4f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated recipes (default: all six)")
    ap.add_argument("--no-pooling", action="store_true", help="skip the SST-2 pooling comparison")
    ap.add_argument("--layers", help="also run SST-2 with these --train-layers values, e.g. 2,3,6")
    ap.add_argument("--decoder", action="store_true", help=f"also run SST-2 and MRPC with {DECODER} (slow)")
    ap.add_argument("--output", type=Path)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--model", default=ENCODER, help=argparse.SUPPRESS)
    ap.add_argument("--extra", default="", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child_train(a.child, a.model, shlex.split(a.extra))))
        return

    recipes = a.only.split(",") if a.only else list(RECIPES)
    t0 = time.perf_counter()
    out: dict = {"model": ENCODER, "targets": TARGETS, "recipes": [], "pooling": [], "layers": [], "decoder": []}
    for r in recipes:
        out["recipes"].append(_run(r, ENCODER, []))
    if not a.no_pooling:
        base = next((x for x in out["recipes"] if x["recipe"] == "sst2"), None)
        out["pooling"] = ([base] if base else []) + [_run("sst2", ENCODER, ["--pooling", p]) for p in POOLINGS]
    for n in (a.layers.split(",") if a.layers else []):
        out["layers"].append(_run("sst2", ENCODER, ["--train-layers", n]))
    if a.decoder:
        out["decoder"] = [_run(r, DECODER, DECODER_OPTIONS[r]) for r in ("sst2", "mrpc")]
    out["total_wall_seconds"] = round(time.perf_counter() - t0, 1)
    runs = {id(x): x for k in ("recipes", "pooling", "layers", "decoder") for x in out[k]}  # SST-2 cls: once
    out["total_cpu_seconds"] = round(sum(x["cpu_seconds"] for x in runs.values()), 1)
    for x in out["recipes"]:
        x["target"] = TARGETS.get(x["recipe"])
        x["meets_target"] = x["target"] is not None and x["value"] >= x["target"]

    rows = [[x["recipe"], x["task"], x["metric"], _fmt(x["value"]), x["target"], "yes" if x["meets_target"] else "NO",
             x["train_layers"], x["epochs"], x["wall_seconds"], x["cpu_seconds"], x["peak_rss_mb"]]
            for x in out["recipes"]]
    table = (f"## Task recipes, {ENCODER} (its recipe options), this CPU\n\n"
             + md_table(["recipe", "task", "metric", "value", "target", "met", "train layers", "epochs", "wall s",
                         "CPU s", "peak RSS MB"], rows))
    sections = [("pooling", "Pooling on SST-2 (test accuracy)", "pooling"),
                ("layers", "Trainable blocks on SST-2 (test accuracy; the rest frozen and cached)", "train_layers")]
    for key, title, col in sections:
        if out[key]:
            rows = [[x[col], _fmt(x["splits"]["test"]["accuracy"]), _fmt(x["splits"]["validation"]["accuracy"]),
                     x["train_seconds"], x["wall_seconds"], x["cpu_seconds"]] for x in out[key]]
            table += f"\n\n## {title}\n\n" + md_table([col, "test acc", "validation acc", "train s", "wall s",
                                                        "CPU s"], rows)
    if out["decoder"]:
        rows = [[x["recipe"], x["metric"], _fmt(x["value"]), x["train_layers"], x["wall_seconds"], x["cpu_seconds"],
                 x["peak_rss_mb"]] for x in out["decoder"]]
        table += f"\n\n## Default decoder, {DECODER}\n\n" + md_table(
            ["recipe", "metric", "value", "train layers", "wall s", "CPU s", "peak RSS MB"], rows)
    table += (f"\n\nTotal: {out['total_wall_seconds'] / 60:.1f} min wall, {out['total_cpu_seconds'] / 60:.1f} min CPU. "
              "SST-2 trains on the 6,920 stsa train sentences (not GLUE's 67k phrases); TREC's dev set is 10 % of "
              "its train file; GoEmotions' per-label thresholds are tuned on dev.")
    path = write_results("tasks", out, table, a.output)
    print(table)
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
