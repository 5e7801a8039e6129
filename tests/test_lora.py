"""LoRA (``--train-layers lora``, ``models/adapters.py``): what trains, what is saved, and
that every way of loading the result (lmclassify, ``pipeline``, peft's adapter, int8, a
resumed run) gives the in-memory model's predictions."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors import safe_open
from torch import nn
from transformers.pytorch_utils import Conv1D

import lmclassify
from helpers import build_classifier
from lmclassify import TextClassifier
from lmclassify.errors import LmClassifyError
from lmclassify.models.adapters import LoraSettings, lora_layers
from test_cli import _sms_csv

pytestmark = pytest.mark.one_thread

TEXTS = ["WINNER! claim your free prize now", "see you at six for dinner", "URGENT cash award, call now",
         "can you pick up milk?", "free entry to win a holiday", "running late, sorry"] * 4
LABELS = ["spam", "ham", "spam", "ham", "spam", "ham"] * 4
MODELS = ["tiny_llama_dir", "tiny_gpt2_dir", "tiny_bert_dir"]


def _in_out(m: nn.Module) -> tuple[int, int]:
    w = m.weight
    return tuple(w.shape) if isinstance(m, Conv1D) else (w.shape[1], w.shape[0])


@pytest.mark.parametrize("model", MODELS)
def test_trainable_parameters_are_the_adapters_head_and_final_norm(model, request):
    """r x (in + out) per adapted Linear of the top K blocks, plus head and final norm in full;
    the blocks below carry no adapter and are the cacheable frozen prefix."""
    path = request.getfixturevalue(model)
    plain, _, _ = build_classifier(path, {0: "a", 1: "b"}, train_layers=2)
    bb = plain.backbone
    linears = [m for b in list(bb.layers)[1:] for m in b.modules() if isinstance(m, (nn.Linear, Conv1D))]
    outside = [plain.head] + ([bb.final_norm] if bb.final_norm is not None else [])
    expected = sum(4 * sum(_in_out(m)) for m in linears) + sum(p.numel() for m in outside for p in m.parameters())
    net, _, _ = build_classifier(path, {0: "a", 1: "b"}, train_layers="lora", lora=LoraSettings(r=4, layers=2))
    assert net.parameter_counts() == (expected, plain.parameter_counts()[1] + expected - sum(
        p.numel() for m in outside for p in m.parameters()))
    assert net.train_layers == "lora" and net.split == bb.n_layers - 2 and net.cacheable
    adapted = {n.split(f".{bb.attr}.")[1].split(".")[0] for n, _ in lora_layers(net.hf)}
    assert adapted == {str(bb.n_layers - 2), str(bb.n_layers - 1)}
    assert len(lora_layers(net.hf)) == len(linears)


def test_targets_and_options_are_checked(tiny_llama_dir):
    net, _, _ = build_classifier(tiny_llama_dir, {0: "a", 1: "b"}, train_layers="lora",
                                 lora=LoraSettings(targets=("q_proj", "v_proj")))
    assert {n.rpartition(".")[2] for n, _ in lora_layers(net.hf)} == {"q_proj", "v_proj"}
    assert len(lora_layers(net.hf)) == 2 * 3 and not net.cacheable  # every block by default
    with pytest.raises(LmClassifyError, match="--lora-targets query: no such Linear.*choose among q_proj"):
        build_classifier(tiny_llama_dir, {0: "a", 1: "b"}, train_layers="lora", lora=LoraSettings(targets=("query",)))
    with pytest.raises(LmClassifyError, match="--lora-layers 4 is more than the model's 3 blocks"):
        build_classifier(tiny_llama_dir, {0: "a", 1: "b"}, train_layers="lora", lora=LoraSettings(layers=4))
    for params, message in (({"lora_layers": 1}, "--lora-layers applies to --train-layers lora only"),
                            ({"train_layers": "lora", "lora_r": 0}, "--lora-r must be a whole number >= 1"),
                            ({"train_layers": "lora", "lora_dropout": 1.0}, "--lora-dropout must be a number in"),
                            ({"save_adapter": True}, "--save-adapter applies to --train-layers lora only")):
        with pytest.raises(LmClassifyError, match=message):
            TextClassifier(str(tiny_llama_dir), progress=False, **params).fit(TEXTS, LABELS)


def test_base_weights_stay_while_adapters_head_and_norm_train(tiny_llama_dir):
    """Every base weight is bit-identical after training; the adapters' B (zero at start),
    the head and the final norm moved. The learning rate is 10x the family's default."""
    clf = TextClassifier(str(tiny_llama_dir), train_layers="lora", epochs=2, batch_size=8, progress=False)
    net, _, _ = build_classifier(tiny_llama_dir, {0: "ham", 1: "spam"}, train_layers="lora", seed=123)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    clf.fit(TEXTS, LABELS)
    after = dict(clf.module_.named_parameters())
    assert set(after) == set(before)
    trained = {n for n, p in after.items() if p.requires_grad}
    for name, p in after.items():
        assert torch.equal(p, before[name]) != (name in trained), name
    assert any(".lora_B." in n for n in trained) and "hf.score.weight" in trained and "hf.model.norm.weight" in trained
    assert all(".lora_" in n for n in trained - {"hf.score.weight", "hf.model.norm.weight"})
    assert clf.train_config_.learning_rate == pytest.approx(5e-4)
    assert clf.model_config_.train_layers == "lora"
    given = TextClassifier(str(tiny_llama_dir), train_layers="lora", learning_rate=1e-3, epochs=1, progress=False)
    assert given.fit(TEXTS[:8], LABELS[:8]).train_config_.learning_rate == 1e-3


@pytest.mark.parametrize("model", MODELS)
def test_saved_merged_model_lmclassify_pipeline_and_adapter_agree(model, request, tmp_path):
    """Saved merged (a plain transformers directory); lmclassify.load, transformers' pipeline
    and peft's adapter on the untouched base classifier all give the in-memory predictions."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    path = request.getfixturevalue(model)
    clf = TextClassifier(str(path), train_layers="lora", lora_layers=2, epochs=3, batch_size=8,
                         save_adapter=True, progress=False).fit(TEXTS, LABELS)
    proba = clf.predict_proba(TEXTS[:6])
    assert np.ptp(proba[:, 0]) > 1e-4  # answers that differ per text: something to compare
    d = clf.save(tmp_path / "m")
    assert np.array_equal(clf.predict_proba(TEXTS[:6]), proba)  # saving leaves the live model as it was
    with safe_open(str(d / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and not any("lora" in k or "base_layer" in k for k in keys)
    meta = json.loads((d / "lmclassify.json").read_text())
    assert meta["transformers_compatible"] and meta["adapter"] == "adapter"
    loaded = lmclassify.load(d)
    assert np.allclose(loaded.predict_proba(TEXTS[:6]), proba, atol=1e-5)
    assert loaded.predict(TEXTS[:6]) == clf.predict(TEXTS[:6])
    pipe = pipeline("text-classification", model=str(d), truncation=True)
    for out, p in zip(pipe(TEXTS[:6], top_k=None), proba):
        assert {r["label"]: r["score"] for r in out} == pytest.approx(dict(zip(clf.classes_, p)), abs=1e-5)
    base = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2, id2label={0: "ham", 1: "spam"},
                                                              label2id={"ham": 0, "spam": 1})
    tok = AutoTokenizer.from_pretrained(d)
    base.config.pad_token_id = tok.pad_token_id
    adapted = PeftModel.from_pretrained(base, d / "adapter").eval()
    with torch.no_grad():
        peft_proba = [adapted(**tok(t, return_tensors="pt")).logits.softmax(-1)[0].numpy() for t in TEXTS[:6]]
    assert np.allclose(np.stack(peft_proba), proba, atol=1e-5)


def test_int8_works_on_the_merged_model(tiny_llama_dir, tmp_path):
    clf = TextClassifier(str(tiny_llama_dir), train_layers="lora", epochs=2, batch_size=8,
                         progress=False).fit(TEXTS, LABELS)
    labels = clf.predict(TEXTS)
    d = clf.save(tmp_path / "m")
    assert not (d / "adapter").exists()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a CPU where no int8 kernel beats fp32 says so and stays fp32
        loaded = lmclassify.load(d, quantize="int8")
        clf.quantize("int8")
    assert not lora_layers(clf.module_.hf)  # merged before quantising: one matmul per layer
    assert loaded.predict(TEXTS) == labels and clf.predict(TEXTS) == labels


def test_top_k_adapters_train_from_the_feature_cache(tiny_gpt2_dir):
    """Adapters on the top block only: the two blocks below are cached, and the cached run
    trains the same weights as the uncached one."""
    kw = dict(train_layers="lora", lora_layers=1, epochs=2, batch_size=8, progress=False, seed=3,
              feature_precision="fp32")  # the same states, cached or not
    cached = TextClassifier(str(tiny_gpt2_dir), **kw).fit(TEXTS, LABELS)
    plain = TextClassifier(str(tiny_gpt2_dir), feature_cache=False, **kw).fit(TEXTS, LABELS)
    assert cached.feature_cache_ and not plain.feature_cache_ and cached.module_.split == 2
    assert np.allclose(cached.predict_proba(TEXTS), plain.predict_proba(TEXTS), atol=1e-5)


def test_cli_run_killed_and_resumed_equals_an_uninterrupted_one(tiny_llama_dir, sms_file, tmp_path):
    """A LoRA run (adapters on the top two blocks, the bottom one cached) killed mid-epoch
    resumes to the same merged weights, adapter and metrics as an uninterrupted run."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LMCLASSIFY_DIE_AT": ""}

    def run(args, die_at=""):
        return subprocess.run([sys.executable, "-m", "lmclassify", *map(str, args)], capture_output=True, text=True,
                              env={**env, "LMCLASSIFY_DIE_AT": die_at}, timeout=300)

    data = _sms_csv(sms_file, tmp_path / "sms.csv", n=64)
    args = ["train", "--data", data, "--model", tiny_llama_dir, "--epochs", "2", "--batch-size", "8", "--seed", "5",
            "--train-layers", "lora", "--lora-layers", "2", "--lora-r", "4", "--save-every", "2", "--save-adapter"]
    p = run(args + ["--output", tmp_path / "ref"])
    assert p.returncode == 0, p.stderr
    assert run(args + ["--output", tmp_path / "m"], die_at="step:5").returncode == -9
    p = run(["train", "--resume", tmp_path / "m"])
    assert p.returncode == 0, p.stderr
    for name in ("model.safetensors", "adapter/adapter_model.safetensors", "metrics.jsonl"):
        assert (tmp_path / "ref" / name).read_bytes() == (tmp_path / "m" / name).read_bytes(), name
    cfg = json.loads((tmp_path / "m" / "training_config.json").read_text())["model"]
    assert cfg["train_layers"] == "lora" and cfg["lora_layers"] == 2 and cfg["lora_r"] == 4


def test_token_tagger_with_lora_round_trips(tiny_bert_dir, tmp_path):
    """Token labelling takes the same adapters; the saved merged model tags as in memory."""
    from lmclassify import TokenClassifier

    words = [["Paris", "is", "big"], ["I", "love", "Berlin"], ["Rome", "again"]] * 4
    tags = [["B-loc", "O", "O"], ["O", "O", "B-loc"], ["B-loc", "O"]] * 4
    ner = TokenClassifier(str(tiny_bert_dir), train_layers="lora", lora_layers=1, epochs=2, batch_size=4,
                          progress=False).fit(words, tags)
    assert ner.module_.train_layers == "lora" and ner.feature_cache_ and lora_layers(ner.module_.hf)
    logits = ner.decision_function(words[:3])
    loaded = lmclassify.load(ner.save(tmp_path / "ner"))
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(logits, loaded.decision_function(words[:3])))
    assert loaded.predict(words[:3]) == ner.predict(words[:3])
