"""Embedding geometry: how anisotropic MiniLM and SmolLM2 sentence vectors are, what
z-scoring each dimension does to that, and whether it helps similarity (STS-B) and
classification (SST-2, a logistic regression on frozen vectors).

    OMP_NUM_THREADS=1 python bench/embeddings.py            # -> bench/results/embeddings.{json,md}

Everything goes through ``lmclassify.inference.embeddings`` (what ``lmclassify embed``
runs). Stats are always fit on other texts than the ones scored (a train sample), and
also on the scored texts themselves, since ``embed --standardize`` fits on its input.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from common import machine, md_table, write_results

from lmclassify.data import published
from lmclassify.inference.embeddings import Standardizer, anisotropy, label_alignment, load_embedder
from lmclassify.models.pooling import Pooler


def sample(ex, n, seed=123):
    if n is None or n >= len(ex):
        return ex
    return ex.subset(np.random.default_rng(seed).permutation(len(ex))[:n].tolist())


def logreg_accuracy(Xtr, ytr, Xte, yte, tuned: bool = False) -> float:
    """Logistic regression at C=1, or with C chosen by 5-fold cross-validation on the train
    sample (z-scoring changes the features' scale, so a fixed C regularises them differently)."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV

    clf = LogisticRegressionCV(Cs=8, cv=5, max_iter=3000) if tuned else LogisticRegression(max_iter=3000)
    clf.fit(Xtr, ytr)
    return float((clf.predict(Xte) == np.asarray(yte)).mean())


def centroid_accuracy(Xtr, ytr, Xte, yte) -> float:
    """Nearest class centroid by cosine: a classifier that is only as good as the cosine geometry."""
    def unit(X):
        return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)

    ytr, yte = np.asarray(ytr), np.asarray(yte)
    classes = np.unique(ytr)
    C = unit(np.stack([unit(Xtr[ytr == c]).mean(0) for c in classes]))
    return float((classes[(unit(Xte) @ C.T).argmax(1)] == yte).mean())


def sst2(model: str, poolings: list[str], n_train, n_test, pairs: int) -> list[dict]:
    train, _, test = published.sst2()
    train, test = sample(train, n_train), sample(test, n_test)
    emb = load_embedder(model, pooling=poolings[0], device="cpu")
    poolers = {k: Pooler(k, emb.dim) for k in poolings}
    t0 = time.perf_counter()
    tr = emb.embed_pooled(train.texts, poolers, batch_size=32)
    te = emb.embed_pooled(test.texts, poolers, batch_size=32)
    seconds = time.perf_counter() - t0
    rows = []
    for k in poolings:
        st = Standardizer().fit(tr[k])
        z_tr, z_te = st.transform(tr[k]), st.transform(te[k])
        raw_al, z_al = (label_alignment(X, test.labels, pairs) for X in (te[k], z_te))
        rows.append({
            "model": model, "pooling": k, "input_template": emb.input_template, "n_train": len(train),
            "n_test": len(test), "dim": emb.dim,
            "anisotropy_raw": anisotropy(te[k], pairs), "anisotropy_z_train_stats": anisotropy(z_te, pairs),
            "anisotropy_z_self_stats": anisotropy(Standardizer().fit_transform(te[k]), pairs),
            "same_label_raw": raw_al["same_label"], "different_label_raw": raw_al["different_label"],
            "gap_raw": raw_al["gap"], "same_label_z": z_al["same_label"],
            "different_label_z": z_al["different_label"], "gap_z": z_al["gap"],
            "logreg_acc_raw": logreg_accuracy(tr[k], train.labels, te[k], test.labels),
            "logreg_acc_z": logreg_accuracy(z_tr, train.labels, z_te, test.labels),
            "logreg_cv_acc_raw": logreg_accuracy(tr[k], train.labels, te[k], test.labels, tuned=True),
            "logreg_cv_acc_z": logreg_accuracy(z_tr, train.labels, z_te, test.labels, tuned=True),
            "centroid_acc_raw": centroid_accuracy(tr[k], train.labels, te[k], test.labels),
            "centroid_acc_z": centroid_accuracy(z_tr, train.labels, z_te, test.labels),
            "embed_seconds_all_poolings": round(seconds, 1),
        })
        print(rows[-1], flush=True)
    return rows


def cosine(A, B) -> np.ndarray:
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    B = B / np.linalg.norm(B, axis=1, keepdims=True)
    return (A * B).sum(1)


def stsb(model: str, pooling: str, n_fit, n_test, pairs: int) -> dict:
    from scipy.stats import spearmanr

    train, _, test = published.stsb()
    fit, test = sample(train, n_fit), sample(test, n_test)
    gold = np.array([float(y) for y in test.labels])
    emb = load_embedder(model, pooling=pooling, device="cpu")
    t0 = time.perf_counter()
    A, B = emb.embed(test.texts), emb.embed(test.pairs)
    F = emb.embed(fit.texts + fit.pairs)
    seconds = time.perf_counter() - t0
    own, other = Standardizer().fit(np.vstack([A, B])), Standardizer().fit(F)
    spear = lambda X, Y: float(spearmanr(cosine(X, Y), gold).statistic) * 100  # noqa: E731
    both = np.vstack([A, B])
    out = {"model": model, "pooling": emb.pooling, "input_template": emb.input_template,
           "n_test_pairs": len(test), "n_fit_sentences": len(F),
           "spearman_raw": spear(A, B),
           "spearman_z_train_stats": spear(other.transform(A), other.transform(B)),
           "spearman_z_self_stats": spear(own.transform(A), own.transform(B)),
           "anisotropy_raw": anisotropy(both, pairs), "anisotropy_z_train_stats": anisotropy(other.transform(both), pairs),
           "embed_seconds": round(seconds, 1)}
    print(out, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minilm-train", type=int, default=2000, help="SST-2 train texts for MiniLM (stats, logreg)")
    ap.add_argument("--minilm-test", type=int, default=None, help="SST-2 test texts for MiniLM (default: all 1,821)")
    ap.add_argument("--smol-train", type=int, default=500)
    ap.add_argument("--smol-test", type=int, default=500)
    ap.add_argument("--stsb-fit", type=int, default=1000, help="STS-B train pairs whose sentences fit the stats")
    ap.add_argument("--stsb-test", type=int, default=None, help="STS-B test pairs (default: all 1,379)")
    ap.add_argument("--pairs", type=int, default=10000)
    ap.add_argument("--output", default=None)
    a = ap.parse_args()
    t0 = time.perf_counter()
    rows = sst2("minilm-l6", ["mean", "cls"], a.minilm_train, a.minilm_test, a.pairs)
    sts = [stsb("minilm-l6", "mean", a.stsb_fit, a.stsb_test, a.pairs)]
    rows += sst2("smollm2-135m", ["mean", "last"], a.smol_train, a.smol_test, a.pairs)
    total = time.perf_counter() - t0
    m = machine()
    data = {"machine": m, "sst2": rows, "stsb": sts, "pairs": a.pairs, "seed": 123, "args": vars(a),
            "total_seconds": round(total, 1)}
    smol = [r for r in rows if r["model"] == "smollm2-135m"][0]
    smol_rate = (smol["n_train"] + smol["n_test"]) / smol["embed_seconds_all_poolings"]
    pct = lambda v: f"{100 * v:.2f}"  # noqa: E731
    t1 = md_table(
        ["model", "pooling", "train / test texts", "anisotropy raw", "z (train stats)", "z (self stats)",
         "same - diff label cos raw", "z"],
        [[r["model"], r["pooling"], f"{r['n_train']} / {r['n_test']}", round(r["anisotropy_raw"], 4),
          round(r["anisotropy_z_train_stats"], 4), round(r["anisotropy_z_self_stats"], 4),
          f"{r['same_label_raw']:.4f} - {r['different_label_raw']:.4f} = {r['gap_raw']:.4f}",
          f"{r['same_label_z']:.4f} - {r['different_label_z']:.4f} = {r['gap_z']:.4f}"] for r in rows])
    t_cls = md_table(
        ["model", "pooling", "cosine centroid raw %", "z %", "logreg C=1 raw %", "z %", "logreg CV C raw %", "z %"],
        [[r["model"], r["pooling"], pct(r["centroid_acc_raw"]), pct(r["centroid_acc_z"]), pct(r["logreg_acc_raw"]),
          pct(r["logreg_acc_z"]), pct(r["logreg_cv_acc_raw"]), pct(r["logreg_cv_acc_z"])] for r in rows])
    t2 = md_table(
        ["model", "pooling", "test pairs", "Spearman raw", "z (train stats)", "z (self stats)", "anisotropy raw",
         "z (train stats)"],
        [[s["model"], s["pooling"], s["n_test_pairs"], round(s["spearman_raw"], 2),
          round(s["spearman_z_train_stats"], 2), round(s["spearman_z_self_stats"], 2),
          round(s["anisotropy_raw"], 4), round(s["anisotropy_z_train_stats"], 4)] for s in sts])
    md = f"""# Sentence embeddings: anisotropy and standardisation

Machine: {m['summary']}. Total {total / 60:.1f} min (`OMP_NUM_THREADS=1`, CPU shared with other jobs).
Run: `OMP_NUM_THREADS=1 python bench/embeddings.py` ({' '.join(f'--{k.replace("_", "-")} {v}' for k, v in vars(a).items() if v is not None)}).

Anisotropy = mean cosine of {a.pairs:,} random pairs of distinct texts (seed 123); z = each dimension z-scored.
"train stats": mean/std fit on the train sample, applied to the test texts; "self stats": fit on the scored
texts themselves (what `lmclassify embed --standardize` does with one file). Label cosines: mean cosine of
{a.pairs:,} random same-label vs different-label test pairs. Classifiers on frozen vectors, fit on the
train sample and scored on the test texts (z: with the train stats): nearest class centroid by cosine,
and scikit-learn's logistic regression at C=1 and with C chosen by 5-fold CV on the train sample.

## SST-2 (stsa.binary; sampled with seed 123 where fewer than all texts were used)

Geometry of the test vectors:

{t1}

Test accuracy of classifiers on the frozen vectors:

{t_cls}

SmolLM2-135M-Instruct reads each text as a chat user turn (`input_template` auto, as the classifier does);
its `last` vector is the assistant header's token, the one lmclassify's classifier head reads. SmolLM2 was
run on {a.smol_train} train / {a.smol_test} test texts only: at {smol_rate:.1f} texts/s on this loaded CPU the full
sets were out of reach; both poolings come from the same forward passes.

## STS-B test (original/sts-test.tsv), cosine similarity vs gold scores

{t2}

Published reference: frozen all-MiniLM-L6-v2 (mean pooling, cosine) ~82 Spearman on STS-B test.
Train stats: the sentences of {a.stsb_fit} STS-B train pairs (seed 123). SmolLM2 was not run on STS-B (time).
"""
    write_results("embeddings", data, md, a.output)
    print(md)


if __name__ == "__main__":
    main()
