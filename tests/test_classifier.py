"""The classifier network: last-token reading, padding invariance, freezing, and the
feature cache matching the uncached path."""
from __future__ import annotations

import pytest
import torch

from lmclassify.data.batching import collate, encode
from helpers import build_classifier
from lmclassify.models.pooling import last_token_index, pool_cls, pool_max, pool_mean

TEXTS = ["Free entry in 2 a wkly comp to win FA Cup final tkts", "Ok lar... Joking wif u oni",
         "hi", "URGENT! You have won a 1 week FREE membership in our £100,000 prize Jackpot!"]


def _pad(seqs, pad_id, side):
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id)
    mask = torch.zeros(len(seqs), T, dtype=torch.long)
    for r, s in enumerate(seqs):
        sl = slice(T - len(s), T) if side == "left" else slice(0, len(s))
        ids[r, sl] = torch.tensor(s)
        mask[r, sl] = 1
    return ids, mask


@pytest.fixture(params=["tiny_gpt2_dir", "tiny_llama_dir"])
def decoder(request):
    clf, tok, _ = build_classifier(str(request.getfixturevalue(request.param)), {0: "ham", 1: "spam"}, 1, seed=0)
    return clf.eval(), tok


def test_last_token_index_from_mask():
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]])
    assert last_token_index(mask).tolist() == [2, 4, 4, 4]


def test_poolers_ignore_padding():
    h = torch.arange(2 * 3 * 2, dtype=torch.float).reshape(2, 3, 2)
    mask = torch.tensor([[1, 1, 0], [0, 1, 1]])
    assert torch.equal(pool_mean(h, mask)[0], h[0, :2].mean(0))
    assert torch.equal(pool_max(h, mask)[1], h[1, 1:].max(0).values)
    assert torch.equal(pool_cls(h, mask)[1], h[1, 1])


def test_logits_do_not_depend_on_padding_side_or_amount(decoder):
    clf, tok = decoder
    seqs = [tok(t)["input_ids"] for t in TEXTS]
    with torch.no_grad():
        alone = torch.cat([clf(input_ids=torch.tensor([s]), attention_mask=torch.ones(1, len(s), dtype=torch.long))
                           for s in seqs])
        for side in ("left", "right"):
            for extra in (0, 7):
                ids, mask = _pad([s for s in seqs], tok.pad_token_id, side)
                if extra:  # more padding than needed
                    ids = torch.cat([ids, torch.full((len(seqs), extra), tok.pad_token_id)], 1) if side == "right" \
                        else torch.cat([torch.full((len(seqs), extra), tok.pad_token_id), ids], 1)
                    z = torch.zeros(len(seqs), extra, dtype=torch.long)
                    mask = torch.cat([mask, z], 1) if side == "right" else torch.cat([z, mask], 1)
                logits = clf(input_ids=ids, attention_mask=mask)
                assert torch.allclose(logits, alone, atol=1e-5), (side, extra)


def test_pad_id_equal_to_eos_inside_text_is_still_read(decoder):
    """GPT-2 pads with EOS; an EOS inside the text must not be taken for padding."""
    clf, tok = decoder
    s = tok("hello there")["input_ids"] + [tok.pad_token_id] + tok("again")["input_ids"]
    ids = torch.tensor([s + [tok.pad_token_id] * 3])
    mask = torch.tensor([[1] * len(s) + [0] * 3])
    with torch.no_grad():
        a = clf(input_ids=ids, attention_mask=mask)
        b = clf(input_ids=torch.tensor([s]), attention_mask=torch.ones(1, len(s), dtype=torch.long))
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("fixture", ["tiny_gpt2_dir", "tiny_llama_dir", "tiny_bert_dir"])
@pytest.mark.parametrize("train_layers", [1, 2, "head"])
def test_feature_cache_matches_uncached_path(request, fixture, train_layers):
    clf, tok, _ = build_classifier(str(request.getfixturevalue(fixture)), {0: "a", 1: "b", 2: "c"},
                                   train_layers, seed=0)
    clf.eval()
    enc = encode(tok, TEXTS, [0, 1, 2, 0], 64)
    from lmclassify.training.feature_cache import build_features

    build_features(clf, enc, tok.pad_token_id, torch.device("cpu"))
    plain = collate(enc, [0, 1, 2, 3], tok.pad_token_id, use_features=False)
    cached = collate(enc, [0, 1, 2, 3], tok.pad_token_id, use_features=True)
    with torch.no_grad():
        a = clf(input_ids=plain["input_ids"], attention_mask=plain["attention_mask"])
    b = clf(hidden=cached["hidden"], attention_mask=cached["attention_mask"])
    assert (a - b).abs().max().item() <= 1e-5
    la = torch.nn.functional.cross_entropy(a, plain["labels"])
    lb = torch.nn.functional.cross_entropy(b, cached["labels"])
    assert abs(la.item() - lb.item()) <= 1e-5
    lb.backward()  # gradients flow into the trainable top from cached states
    assert clf.head.weight.grad is not None and clf.head.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("train_layers,blocks", [(1, 1), (2, 2), ("head", 0), ("all", 3)])
def test_freezing_counts(tiny_llama_dir, train_layers, blocks):
    clf, _, _ = build_classifier(str(tiny_llama_dir), {0: "a", 1: "b"}, train_layers, seed=0)
    bb = clf.backbone
    block = sum(p.numel() for p in bb.layers[0].parameters())
    head = clf.head.weight.numel()
    norm = sum(p.numel() for p in bb.final_norm.parameters())
    trainable, total = clf.parameter_counts()
    if train_layers == "all":
        assert trainable == total
    elif train_layers == "head":
        assert trainable == head
    else:
        assert trainable == blocks * block + norm + head
    clf.train()
    assert [m.training for m in bb.layers] == [i >= 3 - blocks for i in range(3)]


def test_same_seed_same_head(tiny_gpt2_dir):
    a, _, _ = build_classifier(str(tiny_gpt2_dir), {0: "a", 1: "b"}, 1, seed=5)
    b, _, _ = build_classifier(str(tiny_gpt2_dir), {0: "a", 1: "b"}, 1, seed=5)
    c, _, _ = build_classifier(str(tiny_gpt2_dir), {0: "a", 1: "b"}, 1, seed=6)
    assert torch.equal(a.head.weight, b.head.weight)
    assert not torch.equal(a.head.weight, c.head.weight)
    assert 0.01 < a.head.weight.std().item() < 0.03  # N(0, 0.02)


@pytest.mark.parametrize("train_layers", [1, 2, "all"])
def test_last_token_fast_path_matches_transformers(tiny_llama_dir, train_layers):
    """The final block computed at the last token only gives transformers' own logits,
    on token ids and from cached states, and its gradients reach the trainable block."""
    clf, tok, _ = build_classifier(str(tiny_llama_dir), {0: "a", 1: "b"}, train_layers, seed=0)
    assert clf.fast_last
    clf.eval()
    enc = encode(tok, TEXTS, [0, 1, 1, 0], 64)
    b = collate(enc, [0, 1, 2, 3], tok.pad_token_id, use_features=False)
    with torch.no_grad():
        ref = clf.hf(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        ours = clf(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
    assert (ref - ours).abs().max().item() <= 1e-5
    if clf.cacheable:
        from lmclassify.training.feature_cache import build_features

        build_features(clf, enc, tok.pad_token_id, torch.device("cpu"))
        c = collate(enc, [0, 1, 2, 3], tok.pad_token_id, use_features=True)
        cached = clf(hidden=c["hidden"], attention_mask=c["attention_mask"])
        assert (ref - cached).abs().max().item() <= 1e-5
        cached.sum().backward()
        assert clf.backbone.layers[-1].mlp.down_proj.weight.grad.abs().sum() > 0


@pytest.mark.slow
def test_compiled_training_matches_eager(tiny_llama_dir):
    """--compile (torch.compile of the training forward, dynamic shapes) trains the same
    model: the same losses up to kernel rounding, on the cached last-token path."""
    from lmclassify import TextClassifier

    texts = [f"text number {i} " + "word " * (i % 7) for i in range(48)]
    labels = ["a" if i % 3 else "b" for i in range(48)]
    runs = []
    for compiled in (False, True):
        clf = TextClassifier(str(tiny_llama_dir), epochs=2, batch_size=8, learning_rate=1e-3, seed=1,
                             progress=False, device="cpu", compile=compiled)
        clf.fit(texts, labels, validation=(texts[:16], labels[:16]))
        runs.append(clf.fit_result_.history)
    for eager, comp in zip(*runs):
        assert comp["train_loss"] == pytest.approx(eager["train_loss"], abs=2e-3)
        assert comp["val_loss"] == pytest.approx(eager["val_loss"], abs=2e-3)
