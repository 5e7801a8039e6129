"""Few labels: SetFit-style contrastive fine-tuning (``--method setfit``) vs plain fine-tuning
vs the frozen-feature logistic head (``--head logistic``), minilm-l6, on SST-2 and TREC with
K labelled texts per class drawn from the training split (one draw per seed), scored on the
full test sets: SST-2 on the 872 dev sentences (GLUE's SST-2 validation set), TREC on its 500
test questions.

    OMP_NUM_THREADS=1 python bench/few_labels.py --seeds 0,1,2          # ~30 min on a loaded 2-core CPU
    OMP_NUM_THREADS=1 python bench/few_labels.py --seeds 3,4            # more seeds, added to the same file
    OMP_NUM_THREADS=1 python bench/few_labels.py --datasets agnews --shots 8 --methods setfit,logistic

Runs already in bench/results/few_labels.json are kept (the script can be stopped and
resumed; every finished run is written at once). Each method runs through the public
estimator (``TextClassifier``) with the options listed in the .md. The frozen encoder's
features of each test set are computed once and reused from lmclassify's own disk feature
cache (keyed on the frozen weights and the token ids), as a user's repeated runs would.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ["LMCLASSIFY_FEATURE_MEMORY_GB"] = "0"  # every feature cache goes to disk: reused across runs
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine, md_table, recipe_split, write_results  # noqa: E402

import numpy as np  # noqa: E402

MODEL = "minilm-l6"
DATASETS = {"sst2": 64, "trec": 48, "agnews": 128}  # max_length: the recipes'; AG News titles + descriptions
CLASSES = {"sst2": 2, "trec": 6, "agnews": 4}
# AG News (only its 7,600-row test file is here): K per class are drawn from a fixed pool of
# 1,600 rows (400 per class, carved with seed 0) and every run is scored on the other 6,000.
AGNEWS_POOL = 400
SHOTS = (8, 64)
METHODS = ("setfit", "finetune", "logistic")
# Pairs per run on this CPU: SetFit's R = 20 where it fits (8 per class on SST-2), fewer
# rounds where N is larger, so every SetFit run sees 512-960 pairs (see the .md).
ITERATIONS = {("sst2", 8): 20, ("trec", 8): 10, ("sst2", 64): 2, ("trec", 64): 1, ("agnews", 8): 20}
# Plain fine-tuning: the encoder family's defaults (every block, lr 1e-4, linear decay after
# 10 % warmup, [CLS]) with batch 16 and enough epochs for a few dozen steps on so few texts.
FINETUNE_EPOCHS = {8: 20, 64: 5}


def agnews():
    """(training pool, test) from ag_news/test.csv: text = title + " " + description, as the
    Hugging Face ``ag_news`` set (which SetFit's paper used) writes it."""
    import csv

    from lmclassify.data.examples import Examples
    from lmclassify.paths import data_root

    path = data_root() / "ag_news" / "test.csv"
    names = [x.strip() for x in (path.parent / "classes.txt").read_text().splitlines() if x.strip()]
    with path.open(newline="", encoding="utf-8") as f:
        rows = [(names[int(c) - 1], f"{t} {d}".replace("\\", " ")) for c, t, d in csv.reader(f)]
    full = Examples([t for _, t in rows], [y for y, _ in rows], str(path))
    labels = np.asarray(full.labels)
    rng = np.random.default_rng(0)
    pool = np.concatenate([rng.choice(np.flatnonzero(labels == c), AGNEWS_POOL, replace=False) for c in names])
    rest = np.setdiff1d(np.arange(len(full)), pool)
    return full.subset(sorted(pool.tolist())), full.subset(rest.tolist())


def sample(train, k: int, seed: int):
    """k texts per class, drawn without replacement with ``seed``."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(train.labels)
    idx = np.concatenate([rng.choice(np.flatnonzero(labels == c), k, replace=False) for c in sorted(set(labels))])
    return train.subset(rng.permutation(idx).tolist())


def options(method: str, dataset: str, k: int, seed: int) -> dict:
    base = dict(max_length=DATASETS[dataset], seed=seed, progress=False, device="cpu")
    if method == "setfit":
        return {**base, "method": "setfit", "pair_iterations": ITERATIONS[dataset, k]}
    if method == "finetune":
        return {**base, "epochs": FINETUNE_EPOCHS[k], "batch_size": 16}
    return {**base, "head": "logistic"}


def run_one(method: str, dataset: str, k: int, seed: int, splits: dict) -> dict:
    from lmclassify import TextClassifier

    train = sample(splits[dataset][0], k, seed)
    test = splits[dataset][1]
    opts = options(method, dataset, k, seed)
    t0 = time.perf_counter()
    clf = TextClassifier(MODEL, **opts).fit(train.texts, train.labels)
    fit_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    m = clf.evaluate(test.texts, test.labels)
    return {"dataset": dataset, "k": k, "method": method, "seed": seed, "n_train": len(train), "n_test": len(test),
            "accuracy": m["accuracy"], "f1_macro": m["f1_macro"], "fit_seconds": round(fit_s, 2),
            "eval_seconds": round(time.perf_counter() - t1, 2), "steps": clf.fit_result_.steps,
            "options": {k_: v for k_, v in opts.items() if k_ not in ("progress", "device")},
            "resolved": {"pooling": clf.model_config_.pooling, "embedding_norm": clf.model_config_.embedding_norm,
                         "logistic_standardize": clf.train_config_.logistic_standardize, "train_layers": clf.model_config_.train_layers,
                         "head": clf.model_config_.head, "epochs": clf.train_config_.epochs,
                         "batch_size": clf.train_config_.batch_size,
                         "learning_rate": clf.train_config_.learning_rate}}


def summarise(runs: list[dict]) -> list[dict]:
    out = []
    for dataset in DATASETS:
        for k in SHOTS:
            for method in METHODS:
                rs = [r for r in runs if (r["dataset"], r["k"], r["method"]) == (dataset, k, method)]
                if not rs:
                    continue
                acc = np.array([r["accuracy"] for r in rs])
                out.append({"dataset": dataset, "k": k, "method": method, "seeds": sorted(r["seed"] for r in rs),
                            "accuracy_mean": float(acc.mean()), "accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1
                            else 0.0, "f1_macro_mean": float(np.mean([r["f1_macro"] for r in rs])),
                            "fit_seconds_mean": float(np.mean([r["fit_seconds"] for r in rs]))})
    return out


def render(data: dict) -> str:
    rows = [[s["dataset"], s["k"], s["method"], len(s["seeds"]), f"{100 * s['accuracy_mean']:.2f}",
             f"{100 * s['accuracy_std']:.2f}", f"{100 * s['f1_macro_mean']:.2f}", f"{s['fit_seconds_mean']:.1f}"]
            for s in data["summary"]]
    table = md_table(["data", "per class", "method", "seeds", "test acc % (mean)", "std", "macro F1 %",
                      "fit s (mean)"], rows)
    notes = [
        f"## Few labels: {MODEL}, K texts per class, full test sets",
        "",
        f"Machine: {data['machine']['summary']}.",
        "",
        table,
        "",
        "What was run (each seed draws its own K per class from the training split and seeds the run):",
        "- **setfit**: `--method setfit`: contrastive pair fine-tuning of every block (cosine loss, "
        "sentence-transformers' CosineSimilarityLoss semantics; 1 epoch, batch 16, lr 2e-5, linear decay after "
        "10 % warmup; mean pooling), then the logistic head (C=1) on the L2-normalised embeddings, unscaled, as "
        "SetFit's pipeline does (all-MiniLM-L6-v2 ends in a Normalize step). Pair rounds R: " +
        ", ".join(f"{d} K={k}: R={r} ({2 * r * k * CLASSES[d]} pairs)" for (d, k), r in
                  ITERATIONS.items()) + ". SetFit's own default is R=20; on this CPU only K=8 on SST-2 and AG "
        "News got it.",
        "- **finetune**: plain fine-tuning, `lmclassify`'s encoder defaults (every block, lr 1e-4, linear decay "
        f"after 10 % warmup, [CLS] pooling) with batch 16 and {FINETUNE_EPOCHS[8]} epochs at K=8, "
        f"{FINETUNE_EPOCHS[64]} at K=64; no validation split (a few-label user has none): the last weights.",
        "- **logistic**: `--head logistic`: scikit-learn LogisticRegression (C=1, on the L2-normalised embeddings, "
        "folded into the saved Linear head) on the frozen encoder's mean-pooled embeddings.",
        "- Test sets: SST-2 = the 872 stsa.binary dev sentences (GLUE's SST-2 validation set); TREC = the 500 "
        "TREC.test questions (6 coarse classes). max_length 64 (SST-2) / 48 (TREC), the recipes'.",
        "- AG News (only its 7,600-row test file is in the data folder): K per class drawn from a fixed pool "
        f"of {4 * AGNEWS_POOL:,} rows ({AGNEWS_POOL} per class, carved with seed 0), every run scored on the other "
        "6,000 rows; text = title + description.",
        "- Published reference (SetFit paper, all-MiniLM-L6-v2, 8 per class): SST-5 29.8 %, AG News 83.1 % "
        "(on AG News' full 7,600-row test set; SST-5 is not in the data folder, so it is not run here).",
        "- fit seconds are this loaded shared CPU's (one thread); compare them only within a row group.",
    ]
    if data.get("note"):
        notes.append(f"- {data['note']}")
    if data.get("previous_runs"):
        old = [[s["dataset"], s["k"], s["method"], len(s["seeds"]), f"{100 * s['accuracy_mean']:.2f}",
                f"{100 * s['accuracy_std']:.2f}"] for s in summarise(data["previous_runs"])]
        notes += ["", "Superseded runs (`previous_runs` in the JSON): the same seeds before the logistic head "
                  "read L2-normalised embeddings (z-scored features then; the SetFit bodies are the same "
                  "training):", "", md_table(["data", "per class", "method", "seeds", "test acc % (mean)", "std"],
                                             old)]
    return "\n".join(notes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--datasets", default="sst2,trec", help="sst2, trec, agnews (K=8 only)")
    ap.add_argument("--shots", default=",".join(map(str, SHOTS)))
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--note", default=None, help="a line added to the .md")
    ap.add_argument("--rerun", default="", help="comma-separated methods whose stored runs (of --datasets and "
                                                "--shots) are superseded: moved to previous_runs and run again")
    args = ap.parse_args()
    path = RESULTS / "few_labels.json"
    data = json.loads(path.read_text()) if path.is_file() else {"runs": []}
    data["machine"] = machine()
    if args.note:
        data["note"] = args.note
    splits = {}
    for name in args.datasets.split(","):
        if name == "agnews":
            splits[name] = agnews()
            continue
        train, val, test = recipe_split(name)
        splits[name] = (train, val if name == "sst2" else test)
    os.environ.setdefault("LMCLASSIFY_CACHE", tempfile.mkdtemp(prefix="lmc-few-"))
    rerun = {(d, int(k), m) for d in args.datasets.split(",") for k in args.shots.split(",")
             for m in args.rerun.split(",") if m}
    stale = [r for r in data["runs"] if (r["dataset"], r["k"], r["method"]) in rerun]
    if stale:
        data.setdefault("previous_runs", []).extend(stale)
        data["runs"] = [r for r in data["runs"] if r not in stale]
    done = {(r["dataset"], r["k"], r["method"], r["seed"]) for r in data["runs"]}
    t_all = time.perf_counter()
    for seed in map(int, args.seeds.split(",")):
        for name in args.datasets.split(","):
            for k in map(int, args.shots.split(",")):
                for method in args.methods.split(","):
                    if (name, k, method, seed) in done:
                        continue
                    r = run_one(method, name, k, seed, splits)
                    print(f"{name} K={k} {method} seed {seed}: acc {r['accuracy']:.4f}  fit {r['fit_seconds']:.0f} s  "
                          f"eval {r['eval_seconds']:.0f} s  (total {time.perf_counter() - t_all:.0f} s)", flush=True)
                    data["runs"].append(r)
                    data["summary"] = summarise(data["runs"])
                    write_results("few_labels", data, render(data))
    data["summary"] = summarise(data["runs"])
    write_results("few_labels", data, render(data))  # also when every run was already there (a new --note)


if __name__ == "__main__":
    main()
