"""Few labels: the frozen-feature logistic head (``training/logistic_head.py``) and SetFit-style
contrastive pair fine-tuning (``training/contrastive.py``) on tiny random models, through the
estimator, the CLI, ``predict``/``evaluate``, plain transformers and the server."""
from __future__ import annotations

import json
import warnings

import httpx
import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

import lmclassify
from lmclassify import TextClassifier
from lmclassify.cli import main
from lmclassify.config import TrainConfig
from lmclassify.errors import LmClassifyError
from lmclassify.training.contrastive import make_pairs
from lmclassify.training.logistic_head import fit_regression

pytestmark = pytest.mark.one_thread  # tiny models: a 2-thread pool only adds waiting (conftest.py)

POS = ["a great movie, loved it", "wonderful acting and a good story", "brilliant fun for everyone",
       "what a lovely film", "good, happy, great", "I enjoyed every minute"]
NEG = ["terrible plot and bad acting", "the worst film I have seen", "boring and slow",
       "awful, just awful", "bad, sad, dull", "I hated every minute"]
TEXTS = POS + NEG
LABELS = ["pos"] * len(POS) + ["neg"] * len(NEG)
FAST = dict(progress=False, device="cpu", max_length=32)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("standardize", [True, False])
def test_folded_head_is_the_regression(n_classes, standardize):
    """W x + b of the folded head gives scikit-learn's own probabilities on raw features."""
    rng = np.random.default_rng(0)
    y = np.arange(60) % n_classes
    X = rng.normal(size=(60, 5)) * [1, 10, 0.1, 3, 1] + [5, -2, 0, 1, 100] + y[:, None] * 0.5
    W, b = fit_regression(X, y, TrainConfig(logistic_c=0.7, logistic_standardize=standardize), n_classes)
    Z = StandardScaler().fit_transform(X) if standardize else X
    want = LogisticRegression(C=0.7, max_iter=1000).fit(Z, y).predict_proba(Z)
    np.testing.assert_allclose(_softmax(X @ W.T + b), want, atol=1e-6)


def test_pairs_are_balanced_correct_and_seeded():
    y = [0, 0, 0, 1, 1, 2]
    pairs = make_pairs(y, iterations=3, seed=5)
    assert len(pairs) == 2 * 3 * len(y)
    for i, j, t in pairs:
        assert (y[i] == y[j]) == (t == 1.0)
        assert i != j or y.count(y[i]) == 1  # a text is its own partner only when alone in its class
    per_text = {(i, t): 0 for i in range(len(y)) for t in (0.0, 1.0)}
    for i, _, t in pairs:
        per_text[i, t] += 1
    assert set(per_text.values()) == {3}  # R positives and R negatives per text
    assert pairs == make_pairs(y, iterations=3, seed=5) and pairs != make_pairs(y, iterations=3, seed=6)
    with pytest.raises(LmClassifyError, match="two classes"):
        make_pairs([1, 1], iterations=1, seed=0)


def _mean_pooled(model_dir, texts) -> np.ndarray:
    """Mean-pooled last hidden states computed with plain transformers, independently."""
    from transformers import AutoModel, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(model_dir), AutoModel.from_pretrained(model_dir).eval()
    b = tok(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
    with torch.no_grad():
        h = model(**b).last_hidden_state
    m = b["attention_mask"].unsqueeze(-1).float()
    return ((h * m).sum(1) / m.sum(1)).double().numpy()


def test_logistic_head_is_sklearn_on_frozen_mean_embeddings(tiny_bert_dir):
    """With --embedding-norm none: the z-scored regression (the l2 default: see below)."""
    clf = TextClassifier(str(tiny_bert_dir), head="logistic", embedding_norm="none", **FAST).fit(TEXTS, LABELS)
    assert clf.model_config_.train_layers == "head" and clf.model_config_.pooling == "mean"
    X = _mean_pooled(tiny_bert_dir, TEXTS)
    ref = LogisticRegression(max_iter=1000).fit(StandardScaler().fit_transform(X), LABELS)
    want = ref.predict_proba(StandardScaler().fit(X).transform(X))
    np.testing.assert_allclose(clf.predict_proba(TEXTS), want, atol=1e-4)
    assert list(ref.classes_) == list(clf.classes_)
    # the encoder itself did not move
    fresh = TextClassifier(str(tiny_bert_dir), head="logistic", **FAST)
    fresh.fit(TEXTS, LABELS[::-1])
    a = dict(clf.module_.backbone.base.named_parameters())
    for name, p in fresh.module_.backbone.base.named_parameters():
        assert torch.equal(p, a[name]), name


def test_logistic_head_on_cls_folds_into_transformers(tiny_bert_dir, tmp_path):
    """Saved as an ordinary Linear: lmclassify.load and plain transformers' pipeline agree."""
    from transformers import pipeline

    clf = TextClassifier(str(tiny_bert_dir), head="logistic", pooling="cls", logistic_c=10.0, embedding_norm="none",
                         **FAST)
    out = clf.fit(TEXTS, LABELS).save(tmp_path / "m")
    assert json.loads((out / "lmclassify.json").read_text())["transformers_compatible"]
    back = lmclassify.load(out, device="cpu")
    np.testing.assert_allclose(back.predict_proba(TEXTS), clf.predict_proba(TEXTS), atol=1e-6)
    got = [r[0]["label"] for r in pipeline("text-classification", model=str(out), truncation=True,
                                           top_k=1)(TEXTS)]
    assert got == clf.predict(TEXTS)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_l2_embeddings_feed_the_regression_as_unit_vectors(tiny_bert_dir, tmp_path):
    """--embedding-norm l2: the head sees unit vectors and the regression is scikit-learn's
    on them, unscaled (no z-scoring); even on [CLS] the directory is sealed (transformers'
    head cannot normalise) and lmclassify.load gives the same probabilities."""
    from transformers import pipeline

    from lmclassify.training.logistic_head import head_inputs

    clf = TextClassifier(str(tiny_bert_dir), head="logistic", pooling="cls", embedding_norm="l2", **FAST)
    clf.fit(TEXTS, LABELS)
    X = head_inputs(clf.module_, clf._encode(TEXTS), clf.pad_id, clf.device_)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    want = LogisticRegression(C=1.0, max_iter=1000).fit(X, np.asarray(clf.task_.encode_labels(LABELS)))
    np.testing.assert_allclose(clf.predict_proba(TEXTS), want.predict_proba(X), atol=1e-4)
    out = clf.save(tmp_path / "m")
    assert not json.loads((out / "lmclassify.json").read_text())["transformers_compatible"]
    with pytest.raises(ValueError):
        pipeline("text-classification", model=str(out))
    back = lmclassify.load(out, device="cpu")
    assert back.module_.pooler.normalize
    np.testing.assert_allclose(back.predict_proba(TEXTS), clf.predict_proba(TEXTS), atol=1e-6)
    frozen = TextClassifier(str(tiny_bert_dir), head="logistic", **FAST).fit(TEXTS, LABELS)
    assert frozen.model_config_.embedding_norm == "l2"  # auto: an encoder's logistic head reads unit vectors
    plain = TextClassifier(str(tiny_bert_dir), epochs=1, **FAST).fit(TEXTS, LABELS)
    assert plain.model_config_.embedding_norm == "none" and not plain.module_.pooler.normalize


def test_setfit_pulls_classes_apart(tiny_bert_dir):
    """The contrastive phase moves the encoder so same-label texts end up closer than
    different-label ones (cosine of pooled embeddings), more so than before."""
    def gap(est) -> float:
        from lmclassify.training.logistic_head import head_inputs

        X = head_inputs(est.module_, est._encode(TEXTS), est.pad_id, est.device_)
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
        cos, y = X @ X.T, np.asarray(LABELS)
        same, off = y[:, None] == y[None, :], ~np.eye(len(y), dtype=bool)
        return cos[same & off].mean() - cos[~same].mean()

    before = TextClassifier(str(tiny_bert_dir), head="logistic", **FAST).fit(TEXTS, LABELS)
    # a random tiny encoder must learn its word vectors too (train_layers 'all') to tell them apart
    after = TextClassifier(str(tiny_bert_dir), method="setfit", pair_iterations=4, epochs=3, train_layers="all",
                           learning_rate=3e-3, **FAST).fit(TEXTS, LABELS)
    assert after.model_config_.head == "logistic" and after.train_config_.method == "setfit"
    losses = [r["train_loss"] for r in after.fit_result_.history[:-1]]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert gap(before) < 0.05 and gap(after) > gap(before) + 0.3
    assert after.score(TEXTS, LABELS) == 1.0


def test_setfit_cli_train_predict_evaluate_and_serve(tiny_bert_dir, tmp_path, capsys):
    from test_serve import serving

    data = tmp_path / "train.csv"
    data.write_text("text,label\n" + "".join(f"\"{t}\",{y}\n" for t, y in zip(TEXTS * 2, LABELS * 2)))
    out = tmp_path / "m"
    assert main(["train", "--train", str(data), "--validation", str(data), "--model", str(tiny_bert_dir),
                 "--method", "setfit", "--pair-iterations", "2", "--max-length", "32", "--device", "cpu",
                 "--output", str(out)]) == 0
    cfg = json.loads((out / "training_config.json").read_text())
    assert cfg["train"]["method"] == "setfit" and cfg["model"]["head"] == "logistic"
    assert cfg["model"]["embedding_norm"] == "l2"  # SetFit's head reads unit vectors
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 6  # 2 R N = 2 * 2 * 24 = 96 pairs, batch 16, one epoch
    capsys.readouterr()
    assert main(["predict", str(out), "--text", TEXTS[0], "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert main(["evaluate", str(out), "--data", str(data), "--device", "cpu"]) == 0
    est = lmclassify.load(out, device="cpu")
    assert est.predict([TEXTS[0]])[0] in printed
    with serving({"m": est}) as url:
        r = httpx.post(f"{url}/v1/predict", json={"model": "m", "inputs": TEXTS[:3]}, timeout=60)
    assert r.status_code == 200
    assert [p["label"] for p in r.json()["predictions"]] == est.predict(TEXTS[:3])


@pytest.mark.parametrize("method", ["finetune", "setfit"])
def test_logistic_head_works_on_a_decoder(tiny_gpt2_dir, tmp_path, method):
    clf = TextClassifier(str(tiny_gpt2_dir), head="logistic", method=method, pair_iterations=1, **FAST)
    clf.fit(TEXTS, LABELS)
    assert clf.model_config_.pooling == "last" and clf.fit_result_.steps == (2 if method == "setfit" else 0)
    back = lmclassify.load(clf.save(tmp_path / "m"), device="cpu")
    np.testing.assert_allclose(back.predict_proba(TEXTS), clf.predict_proba(TEXTS), atol=1e-6)


@pytest.mark.parametrize("params, labels, match", [
    (dict(head="logistic"), [0.5, 1.5] * 6, "single-label"),
    (dict(head="logistic"), [["a", "b"], ["a"]] * 6, "single-label"),
    (dict(method="setfit", head="mlp"), LABELS, "logistic"),
    (dict(method="setfit", pair_iterations=0), LABELS, "pair-iterations"),
    (dict(method="setfit", train_layers="head"), LABELS, "freezes"),
    (dict(head="logistic", logistic_c=-1.0), LABELS, "logistic-c"),
])
def test_bad_combinations_are_one_line(tiny_bert_dir, params, labels, match):
    with pytest.raises(LmClassifyError, match=match):
        TextClassifier(str(tiny_bert_dir), **FAST, **params).fit(TEXTS, labels)


def test_train_layers_with_a_frozen_head_warns(tiny_bert_dir):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf = TextClassifier(str(tiny_bert_dir), head="logistic", train_layers=2, **FAST).fit(TEXTS, LABELS)
    assert clf.model_config_.train_layers == "head"
    assert any("--method setfit" in str(w.message) for w in caught)
