"""The plain-transformers rule on trained directories: ``pipeline("text-classification",
model=DIR, truncation=True)`` either gives exactly lmclassify's labels, or refuses to load.

Compatible: an encoder's cls pooling + linear head on single-label data (folded into BERT's
own head) and a decoder's last token + linear head (native), GPT-2 and Llama, with and
without a chat input template. Sealed: mean pooling, an MLP head, a decoder head with a
bias, siamese pairs, multi-label, regression. The pipeline runs in a child process that
never imports lmclassify, so each directory has to stand on its own."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import sms_rows as _sms_rows

import lmclassify
from lmclassify import DataConfig, ModelConfig, RunConfig, TextClassifier, TrainConfig

CHILD = r"""
import json, sys
from transformers import pipeline
from transformers.utils import logging
logging.set_verbosity_error()
logging.disable_progress_bar()
jobs = json.load(sys.stdin)
out = {}
for name, (model_dir, texts) in jobs.items():
    try:
        p = pipeline("text-classification", model=model_dir, truncation=True, device="cpu")
    except Exception as e:  # sealed: must fail here, at load
        out[name] = {"error": f"{type(e).__name__}: {e}"}
        continue
    try:
        out[name] = {"one": [[r["label"], r["score"]] for r in p(texts)],
                     "batched": [r["label"] for r in p(texts, batch_size=8)]}
    except Exception as e:  # loaded, then failed: the rule is broken too
        out[name] = {"inference_error": f"{type(e).__name__}: {e}"}
assert not [m for m in sys.modules if m.split(".")[0] == "lmclassify"], "the child imported lmclassify"
print(json.dumps(out))
"""


def run_pipelines(jobs: dict[str, tuple[str, list[str]]]) -> dict:
    """``{name: (model_dir, texts)}`` -> ``{name: {"one": [[label, score]], "batched": [label]} or {"error"}}``."""
    proc = subprocess.run([sys.executable, "-c", CHILD], input=json.dumps(jobs), capture_output=True, text=True,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}, timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


pytestmark = pytest.mark.one_thread  # tiny models: a 2-thread pool only adds waiting (conftest.py)




def _write(path: Path, header: list[str], rows: list) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def sms(sms_file):
    """80 spam + 80 ham to train on; 100 + 100 other texts to compare on."""
    rows = _sms_rows(sms_file)
    spam, ham = [t for y, t in rows if y == "spam"], [t for y, t in rows if y == "ham"]
    return spam[:80] + ham[:80], ["spam"] * 80 + ["ham"] * 80, spam[200:300] + ham[500:600]


# Odd inputs every compatible directory must also agree on (not "": transformers' GPT-2
# cannot run on zero tokens, where lmclassify reads an EOS).
ODD = ["x", "ünïcödé ✓ 🙂", " ".join(["long"] * 600), "WIN " * 70]

# name -> (model fixture, options, kind of data)
COMPATIBLE = {
    "bert-cls-linear": ("tiny_bert_dir", {}, "single"),
    "gpt2-last-linear": ("tiny_gpt2_dir", {}, "single"),
    "llama-last-linear": ("tiny_llama_dir", {}, "single"),
    "chat-llama-last-linear": ("tiny_chat_llama_dir", {}, "single"),
}
SEALED = {
    "gpt2-mean": ("tiny_gpt2_dir", {"pooling": "mean"}, "single"),
    "bert-mean": ("tiny_bert_dir", {"pooling": "mean"}, "single"),
    "bert-mlp": ("tiny_bert_dir", {"head": "mlp"}, "single"),
    "llama-mlp": ("tiny_llama_dir", {"head": "mlp"}, "single"),
    "gpt2-head-bias": ("tiny_gpt2_dir", {"head_bias": True}, "single"),
    "bert-siamese": ("tiny_bert_dir", {"pair_mode": "siamese"}, "pairs"),
    "bert-multi": ("tiny_bert_dir", {}, "multi"),
    "gpt2-regression": ("tiny_gpt2_dir", {}, "regression"),
}


def _xy(kind: str, texts: list[str], labels: list[str]) -> tuple[list, list]:
    if kind == "single":
        return texts, labels
    if kind == "pairs":
        shifted = texts[40:] + texts[:40]
        other = labels[40:] + labels[:40]
        return list(zip(texts, shifted)), ["same" if a == b else "different" for a, b in zip(labels, other)]
    if kind == "multi":
        return texts, [[y, "long"] if len(t) > 80 else [y] for t, y in zip(texts, labels)]
    return texts, [(len(t) % 50) / 10 + 0.05 for t in texts]


def _pick(clf, pool: list[str], n: int = 20) -> list[str]:
    """Up to n texts lmclassify calls spam and n it calls ham: texts where the labels differ."""
    pred = clf.predict(pool)
    return [t for t, p in zip(pool, pred) if p == "spam"][:n] + [t for t, p in zip(pool, pred) if p == "ham"][:n]


@pytest.fixture(scope="module")
def trained(request, tmp_path_factory, sms):
    """Every configuration trained for one epoch at a high learning rate (every layer, so even
    a tiny random BERT separates the classes), saved, then every directory through the
    pipeline in one child process."""
    texts, labels, pool = sms
    d = tmp_path_factory.mktemp("agree")
    dirs, jobs = {}, {}
    for name, (fixture, options, kind) in {**COMPATIBLE, **SEALED}.items():
        clf = TextClassifier(str(request.getfixturevalue(fixture)), epochs=1, batch_size=8, learning_rate=3e-3,
                             train_layers="all", schedule="constant", max_length=64, seed=3, progress=False,
                             device="cpu", label_separator="|", **options)
        X, y = _xy(kind, texts, labels)
        clf.fit(X[10:-10], y[10:-10], validation=(X[:10] + X[-10:], y[:10] + y[-10:]))
        dirs[name] = clf.save(d / name)
        jobs[name] = (str(dirs[name]), (_pick(clf, pool) if name in COMPATIBLE else pool[:5]) + ODD)
    return dirs, run_pipelines(jobs), {name: texts for name, (_, texts) in jobs.items()}


@pytest.mark.parametrize("name", COMPATIBLE)
def test_pipeline_gives_lmclassify_labels(trained, name):
    dirs, got, inputs = trained
    out, texts = dirs[name], inputs[name]
    meta = json.loads((out / "lmclassify.json").read_text())
    assert meta["transformers_compatible"] is True and meta["notes"] == []
    assert meta["folded_head"] is (name.startswith("bert"))
    assert "error" not in got[name] and "inference_error" not in got[name], got[name]
    clf = lmclassify.load(out, device="cpu")
    ours = clf.predict(texts)
    assert ours.count("spam") >= 5 and ours.count("ham") >= 5, "one class everywhere proves little"
    theirs = [label for label, _ in got[name]["one"]]
    assert theirs == ours
    assert got[name]["batched"] == ours  # padded batches too
    p = clf.predict_proba(texts)
    assert max(abs(score - row.max()) for (_, score), row in zip(got[name]["one"], p)) < 1e-4


@pytest.mark.parametrize("name", SEALED)
def test_pipeline_refuses_a_sealed_directory_and_lmclassify_still_predicts(trained, name):
    dirs, got, inputs = trained
    out, texts = dirs[name], inputs[name]
    meta = json.loads((out / "lmclassify.json").read_text())
    assert meta["transformers_compatible"] is False
    assert json.loads((out / "config.json").read_text())["model_type"] == "lmclassify"
    assert "error" in got[name], f"plain transformers loaded a sealed directory: {got[name]}"
    assert "lmclassify" in got[name]["error"]
    assert any("plain transformers refuses this directory" in n for n in meta["notes"])
    clf = lmclassify.load(out, device="cpu")
    x = list(zip(texts, texts[::-1])) if SEALED[name][2] == "pairs" else texts
    pred = clf.predict(x)
    assert len(pred) == len(x)
    kind = SEALED[name][2]
    if kind == "regression":
        assert all(isinstance(v, float) for v in pred)
    elif kind == "multi":
        assert all(isinstance(v, list) for v in pred)
    else:
        assert set(pred) <= set(clf.classes_)


@pytest.mark.slow
def test_real_minilm_pipeline_agrees_on_every_label(tmp_path, sms_file):
    """all-MiniLM-L6-v2, 1 epoch on 300 SMS texts, then 300 others: 100 % the same labels."""
    rows = _sms_rows(sms_file)
    spam, ham = [t for y, t in rows if y == "spam"], [t for y, t in rows if y == "ham"]
    train = [(t, "spam") for t in spam[:150]] + [(t, "ham") for t in ham[:150]]
    test = spam[300:450] + ham[1000:1150]
    data = _write(tmp_path / "sms.csv", ["text", "label"], train)
    cfg = RunConfig(model=ModelConfig(name="minilm-l6"), data=DataConfig(data=str(data), split=(0.9, 0.1, 0.0)),
                    train=TrainConfig(epochs=1, device="cpu"))
    out = tmp_path / "minilm"
    lmclassify.train(cfg, out, progress=False)
    meta = json.loads((out / "lmclassify.json").read_text())
    assert meta["transformers_compatible"] is True and meta["folded_head"] is True
    assert "loads with plain transformers" in (out / "report.md").read_text()
    got = run_pipelines({"minilm": (str(out), test)})["minilm"]
    assert "error" not in got, got
    ours = lmclassify.load(out, device="cpu").predict(test)
    assert set(ours) == {"ham", "spam"}
    same = sum(a == b for (a, _), b in zip(got["one"], ours))
    assert same == len(test), f"{same}/{len(test)} labels agree"
    assert got["batched"] == ours
