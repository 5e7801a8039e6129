"""Long documents: ``--long-text truncate | head-tail | chunk (mean, max)`` on BBC News
(5 topics, median ~450 tokens) with the default encoder, at ``--max-length`` 128 and 256.

    OMP_NUM_THREADS=1 python bench/long_text.py                 # 500 articles (~20 min on a loaded CPU)
    OMP_NUM_THREADS=1 python bench/long_text.py --docs 1490     # every article

Sized for a loaded 2-core CPU: a seeded, stratified sample of ``--docs`` articles, split
40/10/50 (train / validation / test), and minilm-l6 with its blocks frozen
(``--train-layers head``, mean pooling, the feature cache): every token is read once by
the encoder and only the linear head trains, so the encoder's reading cost, which is what
the modes change, dominates the time. Fixed epochs, no best-epoch pick (``keep_best``
off): training reads each window alone with its document's label, so chunk-mean and
chunk-max train the same network and differ only in how the test windows' logits are
merged; they are trained once and evaluated both ways.

Per setting: test accuracy and macro F1, texts over max_length, the tokens the encoder read
(special tokens included) against the tokens the articles hold, and the seconds of the
whole run (encoding, caching, training, test prediction), as a ratio to truncate at the
same max_length measured in the same process. Writes bench/results/long_text.{json,md}.
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import md_table, write_results  # noqa: E402

import os  # noqa: E402

DATA = Path(os.environ["LMCLASSIFY_DATA"]) / "bbc_news" / "BBC News Train.csv"
MODES = ("truncate", "head-tail", "chunk")


def load(n_docs: int, seed: int):
    from sklearn.model_selection import train_test_split

    with open(DATA, newline="", encoding="utf-8") as f:
        rows = [(r["Text"], r["Category"]) for r in csv.DictReader(f)]
    texts, labels = [t for t, _ in rows], [y for _, y in rows]
    if n_docs < len(rows):
        texts, _, labels, _ = train_test_split(texts, labels, train_size=n_docs, stratify=labels, random_state=seed)
    tr_x, rest_x, tr_y, rest_y = train_test_split(texts, labels, train_size=0.4, stratify=labels, random_state=seed)
    va_x, te_x, va_y, te_y = train_test_split(rest_x, rest_y, train_size=1 / 6, stratify=rest_y, random_state=seed)
    return (tr_x, tr_y), (va_x, va_y), (te_x, te_y)


def one_setting(splits, max_length: int, mode: str, args) -> list[dict]:
    import torch

    from lmclassify import TextClassifier
    from lmclassify.training.feature_cache import build_features

    (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = splits
    t0 = time.perf_counter()
    est = TextClassifier("minilm-l6", train_layers="head", pooling="mean", max_length=max_length, long_text=mode,
                         stride=args.stride, epochs=args.epochs, batch_size=16, learning_rate=args.lr,
                         keep_best=False, progress=False, device="cpu", seed=args.seed)
    est.fit(tr_x, tr_y, validation=(va_x, va_y))
    fit_s = time.perf_counter() - t0
    # The test split, encoded and cached once (the library's own path: _encode, build_features,
    # predict_logits via _outputs), then merged by each aggregate.
    t1 = time.perf_counter()
    enc = est._encode(te_x, te_y)
    build_features(est.module_, enc, est.pad_id, est.device_, desc="cache test")
    encode_s = time.perf_counter() - t1
    tok = est.tokenizer_
    present = sum(len(x) for x in tok(list(tr_x) + list(va_x) + list(te_x), verbose=False)["input_ids"])
    read = sum(len(x) for e in (est._encoded["train"], est._encoded["validation"], enc) for x in e.input_ids)
    out = []
    for agg in (("mean", "max") if mode == "chunk" else (None,)):
        if enc.windows is not None:
            enc.windows.aggregate = agg
        t2 = time.perf_counter()
        with torch.inference_mode():
            m = est.task_.metrics(est._outputs(enc), enc.labels)
        seconds = fit_s + encode_s + time.perf_counter() - t2
        out.append({"max_length": max_length, "mode": mode if agg is None else f"chunk ({agg})",
                    "test_accuracy": m["accuracy"], "test_f1_macro": m["f1_macro"],
                    "over_max_length": {"train": est._encoded["train"].over_length,
                                        "validation": est._encoded["validation"].over_length,
                                        "test": enc.over_length},
                    "rows": {"train": len(est._encoded["train"].input_ids), "test": len(enc.input_ids)},
                    "tokens_read": read, "tokens_present": present, "seconds": round(seconds, 2),
                    "train_seconds": round(est.train_seconds_, 2)})
        print(f"{max_length} {out[-1]['mode']:<13} acc {m['accuracy']:.4f}  f1 {m['f1_macro']:.4f}  "
              f"tokens {read / present:.3f}x  {seconds:.1f} s", flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--docs", type=int, default=500, help="articles sampled (stratified, seeded); 1490 = all")
    p.add_argument("--lengths", default="128,256")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--stride", type=int, default=None, help="window overlap (default: max_length / 8)")
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--output", type=Path, default=None)
    args = p.parse_args()
    import torch

    torch.manual_seed(args.seed)
    splits = load(args.docs, args.seed)
    t0 = time.perf_counter()
    results = []
    for L in (int(x) for x in args.lengths.split(",")):
        for mode in MODES:
            results += one_setting(splits, L, mode, args)
    total = time.perf_counter() - t0

    base = {r["max_length"]: r for r in results if r["mode"] == "truncate"}
    rows = []
    for r in results:
        b = base[r["max_length"]]
        over = r["over_max_length"]
        rows.append([r["max_length"], r["mode"], f"{r['test_accuracy']:.4f}", f"{r['test_f1_macro']:.4f}",
                     f"{over['train'] + over['validation'] + over['test']} / {args.docs}",
                     f"{r['rows']['test']}", f"{r['tokens_read'] / r['tokens_present']:.3f}",
                     f"{r['tokens_read'] / b['tokens_read']:.2f}", f"{r['seconds']:.0f}",
                     f"{r['seconds'] / b['seconds']:.2f}"])
    n_tr, n_va, n_te = (len(s[0]) for s in splits)
    counts = Counter(splits[2][1])
    table = "\n".join([
        "## Long documents: BBC News, minilm-l6, --long-text truncate / head-tail / chunk", "",
        md_table(["max_length", "long text", "test acc", "test macro F1", "texts over max_length",
                  "test rows", "tokens read / present", "tokens vs truncate", "seconds", "time vs truncate"], rows),
        "",
        f"What ran: {args.docs} of the 1,490 BBC News articles (seeded, stratified), split {n_tr} train / "
        f"{n_va} validation / {n_te} test (test: {dict(sorted(counts.items()))}); minilm-l6 frozen "
        f"(--train-layers head, --pooling mean, feature cache), linear head {args.epochs} epochs, batch 16, "
        f"lr {args.lr}, no best-epoch pick; window overlap --stride "
        f"{'max_length / 8' if args.stride is None else args.stride}; head-tail keeps the first quarter and the "
        f"last three quarters of the text budget. One process, one thread, side by side; total "
        f"{total / 60:.1f} min. One test article is {100 / n_te:.1f} points of accuracy: a difference of a "
        f"few articles is within noise.",
        "",
        "'tokens read / present': tokens the encoder read (every split, special tokens included) over the "
        "tokens the articles hold whole; 'seconds': encoding, feature caching, training and test prediction "
        "of the setting (chunk mean and max share one training: the per-window loss does not depend on the "
        "aggregate; their test predictions are timed apart). Times are noisy on this shared machine: read "
        "the ratios, measured in the same run.",
    ])
    write_results("long_text", {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                                "splits": {"train": n_tr, "validation": n_va, "test": n_te},
                                "total_seconds": round(total, 1), "results": results}, table, args.output)
    print(table)


if __name__ == "__main__":
    main()
