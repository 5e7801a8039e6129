"""Sentence embeddings (inference/embeddings.py, jobs/embed.py, `lmclassify embed`):
pooling over a backbone agrees with a plain transformers forward, standardisation gives
zero mean / unit std on the fit data and its stats round-trip, the geometry measures
react to what they measure, and the CLI writes .npy/.parquet atomically, never over a file."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lmclassify.cli import main
from lmclassify.config import EmbedConfig
from lmclassify.errors import LmClassifyError
from lmclassify.inference.embeddings import Standardizer, anisotropy, label_alignment, load_embedder, random_pairs
from lmclassify.jobs.embed import embed

pytestmark = pytest.mark.one_thread

TEXTS = ["I loved this film", "What a wonderful story", "A dull, boring mess", "I hated every minute of it",
         "Brilliant acting and a clever plot", "x", "The worst thing I have seen this year, truly awful"]
LABELS = ["pos", "pos", "neg", "neg", "pos", "neg", "neg"]


def _csv(path: Path, texts=TEXTS, labels=LABELS) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(zip(texts, labels))
    return path


def _anisotropic(n=400, d=16, seed=0) -> np.ndarray:
    """Vectors sharing a big common offset, one dimension with a huge scale: what LMs give."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + 5.0
    X[:, 3] *= 40
    return X.astype(np.float32)


# ---- Standardizer ------------------------------------------------------------------------

def test_standardizer_gives_zero_mean_unit_std_on_the_fit_data():
    X = _anisotropic()
    Z = Standardizer().fit(X).transform(X)
    assert Z.dtype == np.float32 and Z.shape == X.shape
    np.testing.assert_allclose(Z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(Z.std(0), 1, atol=1e-5)


def test_a_constant_dimension_maps_to_zero_not_nan():
    X = _anisotropic()
    X[:, 0] = 7.0
    Z = Standardizer().fit_transform(X)
    assert np.isfinite(Z).all() and np.all(Z[:, 0] == 0)


def test_stats_round_trip_exactly_and_apply_to_new_vectors(tmp_path):
    X, Y = _anisotropic(seed=1), _anisotropic(n=50, seed=2)
    s = Standardizer(meta={"model": "m", "pooling": "mean"}).fit(X)
    path = s.save(tmp_path / "stats.json")
    t = Standardizer.load(path)
    assert np.array_equal(t.mean_, s.mean_) and np.array_equal(t.std_, s.std_)
    assert t.meta == {"model": "m", "pooling": "mean"} and t.n_ == len(X)
    assert np.array_equal(t.transform(Y), s.transform(Y))
    np.testing.assert_allclose(t.transform(Y), (Y - X.astype(np.float64).mean(0)) / X.astype(np.float64).std(0),
                               rtol=1e-5, atol=1e-5)
    assert not list(tmp_path.glob(".*tmp*"))


def test_stats_refuse_other_widths_and_broken_files(tmp_path):
    s = Standardizer().fit(_anisotropic(d=16))
    with pytest.raises(LmClassifyError, match="16-dimensional"):
        s.transform(np.zeros((3, 8), np.float32))
    bad = tmp_path / "bad.json"
    for text in ("not json", json.dumps({"mean": [0.0], "std": [1.0]}),
                 json.dumps({"format": "lmclassify-embedding-stats", "mean": [0.0, 1.0], "std": [1.0]}),
                 json.dumps({"format": "lmclassify-embedding-stats", "mean": [0.0], "std": [0.0]})):
        bad.write_text(text)
        with pytest.raises(LmClassifyError, match="bad.json"):
            Standardizer.load(bad)
    with pytest.raises(LmClassifyError, match="no such stats file"):
        Standardizer.load(tmp_path / "missing.json")


# ---- geometry ----------------------------------------------------------------------------

def test_random_pairs_are_distinct_and_cover_every_index():
    i, j = random_pairs(5, 20000, np.random.default_rng(0))
    assert np.all(i != j)
    counts = np.bincount(j, minlength=5)
    assert counts.min() > 3500  # uniform: 4000 each


def test_anisotropy_is_high_for_shared_offsets_and_near_zero_after_standardising():
    X = _anisotropic(n=2000)
    assert anisotropy(X, 5000, seed=1) > 0.5
    assert abs(anisotropy(Standardizer().fit_transform(X), 5000, seed=1)) < 0.03
    assert anisotropy(X, 5000, seed=1) == anisotropy(X, 5000, seed=1)  # seeded


def test_label_alignment_tells_clusters_apart():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 32)) * 3
    y = rng.integers(0, 3, 600)
    X = centres[y] + rng.normal(size=(600, 32))
    a = label_alignment(X, [f"c{k}" for k in y], 3000)
    assert a["same_label"] > a["different_label"] + 0.3 and a["classes"] == 3
    shuffled = label_alignment(X, [f"c{k}" for k in rng.permutation(y)], 3000)
    assert abs(shuffled["gap"]) < 0.05
    assert label_alignment(X, ["one"] * 600) is None


# ---- pooling over real (tiny) backbones ---------------------------------------------------

def _alone(model_dir, texts, pooling):
    """Each text alone, unpadded, through transformers' own base model."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    base = AutoModel.from_pretrained(model_dir).eval()
    out = []
    for t in texts:
        ids = tok(t, return_tensors="pt")
        with torch.no_grad():
            h = base(**ids).last_hidden_state[0]  # (T, H)
        out.append({"mean": h.mean(0), "cls": h[0], "last": h[-1], "max": h.max(0).values}[pooling].numpy())
    return np.stack(out)


@pytest.mark.parametrize("fixture,pooling", [("tiny_bert_dir", "mean"), ("tiny_bert_dir", "cls"),
                                             ("tiny_gpt2_dir", "last"), ("tiny_llama_dir", "mean"),
                                             ("tiny_llama_dir", "max")])
def test_batched_pooled_vectors_equal_each_text_alone(request, fixture, pooling):
    model_dir = request.getfixturevalue(fixture)
    emb = load_embedder(str(model_dir), pooling=pooling, device="cpu")
    X = emb.embed(TEXTS, batch_size=3, progress=False)
    assert X.dtype == np.float32 and X.shape == (len(TEXTS), emb.dim)
    np.testing.assert_allclose(X, _alone(model_dir, TEXTS, pooling), atol=2e-5, rtol=1e-4)


def test_auto_pooling_is_mean_for_encoders_and_last_for_decoders(tiny_bert_dir, tiny_gpt2_dir):
    assert load_embedder(str(tiny_bert_dir), device="cpu").pooling == "mean"
    assert load_embedder(str(tiny_gpt2_dir), device="cpu").pooling == "last"


def test_a_fine_tuned_directory_embeds_with_its_own_backbone_and_pooler(tmp_path, tiny_bert_dir):
    from lmclassify import TextClassifier

    clf = TextClassifier(str(tiny_bert_dir), epochs=1, batch_size=4, learning_rate=1e-2, seed=3,
                         device="cpu").fit(TEXTS, LABELS)
    clf.save(tmp_path / "run")
    X = embed(str(tmp_path / "run"), _csv(tmp_path / "d.csv"), progress=False)["embeddings"]
    module = clf.module_.eval()
    tok = clf.tokenizer_
    for k, t in enumerate(TEXTS):
        ids = tok(t, return_tensors="pt")
        with torch.no_grad():
            want = module.pooled(ids["input_ids"], ids["attention_mask"])[0].numpy()
        np.testing.assert_allclose(X[k], want, atol=2e-5, rtol=1e-4)
    # fine-tuning moved the backbone: not the base model's vectors
    base = load_embedder(str(tiny_bert_dir), pooling="cls", device="cpu").embed(TEXTS, progress=False)
    assert np.abs(base - X).max() > 1e-3


# ---- the job and the CLI --------------------------------------------------------------------

def test_cli_writes_npy_and_parquet_of_the_same_vectors(tmp_path, tiny_bert_dir, capsys):
    data = _csv(tmp_path / "d.csv")
    assert main(["embed", str(tiny_bert_dir), "--data", str(data), "-o", str(tmp_path / "e.npy")]) == 0
    assert main(["embed", str(tiny_bert_dir), "--data", str(data), "-o", str(tmp_path / "e.parquet")]) == 0
    X = np.load(tmp_path / "e.npy")
    assert X.dtype == np.float32 and X.shape == (len(TEXTS), 32)
    import pyarrow.parquet as pq

    t = pq.read_table(tmp_path / "e.parquet")
    assert t.column("text").to_pylist() == TEXTS
    assert np.array_equal(np.array(t.column("embedding").to_pylist(), dtype=np.float32), X)
    assert f"embedded {len(TEXTS)} texts" in capsys.readouterr().out
    assert not list(tmp_path.glob(".*tmp*"))


def test_cli_standardize_saves_stats_that_a_later_run_applies(tmp_path, tiny_bert_dir, capsys):
    data, more = _csv(tmp_path / "d.csv"), _csv(tmp_path / "more.csv", TEXTS[::-1][:4], LABELS[:4])
    assert main(["embed", str(tiny_bert_dir), "--data", str(data), "-o", str(tmp_path / "z.npy"),
                 "--standardize"]) == 0
    Z = np.load(tmp_path / "z.npy")
    np.testing.assert_allclose(Z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(Z.std(0), 1, atol=1e-4)
    stats = tmp_path / "z.stats.json"
    saved = json.loads(stats.read_text())
    assert saved["n"] == len(TEXTS) and saved["dim"] == 32 and saved["pooling"] == "mean"
    assert main(["embed", str(tiny_bert_dir), "--data", str(more), "-o", str(tmp_path / "m.npy"),
                 "--stats", str(stats)]) == 0
    raw = embed(str(tiny_bert_dir), more, progress=False)["embeddings"]
    np.testing.assert_allclose(np.load(tmp_path / "m.npy"), Standardizer.load(stats).transform(raw), atol=1e-5)
    assert "standardized with the stats in" in capsys.readouterr().out


def test_cli_report_prints_anisotropy_and_label_alignment(tmp_path, tiny_bert_dir, capsys):
    data = _csv(tmp_path / "d.csv")
    assert main(["embed", str(tiny_bert_dir), "--data", str(data), "--report", "--report-pairs", "500"]) == 0
    out = capsys.readouterr().out
    assert "anisotropy (mean cosine of 500 random pairs): raw" in out and "label alignment, raw" in out
    r = embed(str(tiny_bert_dir), data, options=EmbedConfig(report=True, report_pairs=500), progress=False)
    assert r["report"]["raw"]["anisotropy"] > r["report"]["standardized"]["anisotropy"]
    assert f"{r['report']['raw']['anisotropy']:.4f}" in out


@pytest.mark.parametrize("args,message", [
    (["-o", "{tmp}/exists.npy"], "exists; pass --overwrite"),
    (["-o", "{tmp}/e.csv"], "write embeddings as .npy"),
    (["-o", "{tmp}/nofolder/e.npy"], "is not an existing folder"),
    ([], "nothing to do"),
    (["-o", "{tmp}/e.npy", "--stats", "{tmp}/none.json"], "no such stats file"),
    (["-o", "{tmp}/e.npy", "--text-column", "body"], "no column 'body'"),
    (["-o", "{tmp}/e.npy", "--batch-size", "0"], "--batch-size must be"),
])
def test_bad_input_is_one_line_and_leaves_files_alone(tmp_path, tiny_bert_dir, capsys, args, message):
    data = _csv(tmp_path / "d.csv")
    (tmp_path / "exists.npy").write_bytes(b"mine")
    argv = ["embed", str(tiny_bert_dir), "--data", str(data)] + [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert (tmp_path / "exists.npy").read_bytes() == b"mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv", "exists.npy"]


def test_overwrite_replaces_output_and_stats(tmp_path, tiny_bert_dir):
    data = _csv(tmp_path / "d.csv")
    (tmp_path / "e.npy").write_bytes(b"old")
    (tmp_path / "e.stats.json").write_text("old")
    assert main(["embed", str(tiny_bert_dir), "--data", str(data), "-o", str(tmp_path / "e.npy"),
                 "--standardize"]) == 2  # both exist
    assert main(["embed", str(tiny_bert_dir), "--data", str(data), "-o", str(tmp_path / "e.npy"),
                 "--standardize", "--overwrite"]) == 0
    assert np.load(tmp_path / "e.npy").shape == (len(TEXTS), 32)
    Standardizer.load(tmp_path / "e.stats.json")


# ---- real weights -----------------------------------------------------------------------------

@pytest.mark.slow
def test_minilm_mean_vectors_rank_a_paraphrase_above_an_unrelated_text():
    texts = ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell sharply today."]
    X = load_embedder("minilm-l6", device="cpu").embed(texts, progress=False)
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    assert U[0] @ U[1] > 0.6 > U[0] @ U[2] + 0.3
