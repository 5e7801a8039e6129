"""``--gradient-checkpointing``: the same training, less kept for the backward pass."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers import build_classifier
from lmclassify import TextClassifier
from lmclassify.models.checkpointing import checkpoint_activations
from test_pretrain import _cli, _embeddings, labelled_csv  # noqa: F401 (a fixture)

pytestmark = pytest.mark.one_thread

TEXTS = ["WINNER! claim your free prize now", "see you at six for dinner", "URGENT cash award, call now",
         "can you pick up milk?", "free entry to win a holiday", "running late, sorry"] * 3
LABELS = ["spam", "ham", "spam", "ham", "spam", "ham"] * 3


@pytest.mark.parametrize("model", ["tiny_llama_dir", "tiny_gpt2_dir", "tiny_bert_dir"])
@pytest.mark.parametrize("layers", [{"train_layers": "all"}, {"train_layers": 2},
                                    {"train_layers": "lora", "lora_layers": 2}])
def test_checkpointed_training_ends_with_the_same_model(model, layers, request):
    """Recomputing activations must not change what is learned: every block trained, the top
    two over the feature cache (block k's input arrives by a hook, which must stay outside
    the replay), and LoRA. Dropout included (the tiny models have it)."""
    path = str(request.getfixturevalue(model))
    probs = []
    for ckpt in (False, True):
        clf = TextClassifier(path, epochs=2, batch_size=4, learning_rate=1e-3, seed=7, progress=False, device="cpu",
                             gradient_checkpointing=ckpt, **layers).fit(TEXTS, LABELS)
        probs.append(clf.predict_proba(TEXTS))
    assert not np.allclose(probs[0], 0.5, atol=1e-3)  # it did learn something
    np.testing.assert_allclose(probs[1], probs[0], atol=2e-4)


def _saved_bytes(net, batch) -> int:
    """Bytes autograd keeps from one training forward for the backward pass."""
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    net.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(**batch).sum().backward()
    return total[0]


def test_checkpointing_keeps_less_for_the_backward_pass(tiny_llama_dir):
    torch.manual_seed(0)
    batch = {"input_ids": torch.randint(3, 200, (4, 48)), "attention_mask": torch.ones(4, 48, dtype=torch.long)}
    plain, _, _ = build_classifier(tiny_llama_dir, {0: "a", 1: "b"}, train_layers="all")
    ckpt, _, _ = build_classifier(tiny_llama_dir, {0: "a", 1: "b"}, train_layers="all")
    checkpoint_activations(ckpt.hf)
    assert _saved_bytes(ckpt, batch) < 0.5 * _saved_bytes(plain, batch)


def test_the_saved_model_carries_no_checkpointing(tiny_llama_dir, tmp_path):
    clf = TextClassifier(str(tiny_llama_dir), epochs=1, train_layers="all", gradient_checkpointing=True,
                         progress=False, device="cpu").fit(TEXTS, LABELS)
    clf.save(tmp_path / "m")
    assert "gradient_checkpointing" not in json.loads((tmp_path / "m" / "config.json").read_text())
    again = TextClassifier.load(tmp_path / "m", device="cpu")
    np.testing.assert_allclose(again.predict_proba(TEXTS), clf.predict_proba(TEXTS), atol=1e-5)


def test_pretraining_with_checkpointing_learns_the_same_weights(tiny_bert_dir, labelled_csv, tmp_path):  # noqa: F811
    args = ["pretrain", "--data", labelled_csv, "--model", tiny_bert_dir, "--epochs", "1", "--batch-size", "8",
            "--learning-rate", "1e-3", "--seed", "3"]
    assert _cli(*args, "--output", tmp_path / "a").returncode == 0
    p = _cli(*args, "--output", tmp_path / "b", "--gradient-checkpointing")
    assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "b" / "pretrain_config.json").read_text())["train"]["gradient_checkpointing"]
    a, b = _embeddings(tmp_path / "a"), _embeddings(tmp_path / "b")
    assert not torch.equal(a, _embeddings(tiny_bert_dir))
    torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)
