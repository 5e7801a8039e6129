"""Heads and encoders in the classifier network: our own head replaces transformers'
(which stays untrained), encoders start from cached states like decoders, and siamese
pairs read each text alone."""
from __future__ import annotations

import pytest
import torch

from lmclassify.data.batching import collate, encode
from lmclassify.models.heads import MLPHead, make_head, siamese_features
from helpers import build_classifier
from lmclassify.training.feature_cache import build_features

A = ["A man is playing a flute.", "The cat sat.", "Stocks fell sharply on Monday after the report.", "ok"]
B = ["A man plays a flute.", "A dog ran.", "Markets dropped.", "fine then"]


pytestmark = pytest.mark.one_thread  # tiny models: a 2-thread pool only adds waiting (conftest.py)


def test_make_head_shapes_and_init():
    torch.manual_seed(0)
    lin, mlp = make_head("linear", 12, 3), make_head("mlp", 12, 3)
    assert isinstance(mlp, MLPHead) and mlp(torch.zeros(2, 12)).shape == (2, 3)
    assert torch.equal(lin.bias, torch.zeros(3)) and 0.005 < lin.weight.std() < 0.05
    u, v = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 1.0]])
    assert siamese_features(u, v).tolist() == [[1.0, 2.0, 3.0, 1.0, 2.0, 1.0]]
    with pytest.raises(ValueError):
        make_head("crf", 4, 2)


@pytest.mark.parametrize("train_layers", ["all", 1, "head"])
def test_encoder_head_is_ours_and_transformers_head_stays_frozen(tiny_bert_dir, train_layers):
    clf, _, _ = build_classifier(str(tiny_bert_dir), {0: "a", 1: "b"}, train_layers, seed=0)
    assert clf.own_head and clf.head is not clf.hf.classifier and clf.pooler.kind == "cls"
    assert not any(p.requires_grad for p in clf.hf.classifier.parameters())
    assert not any(p.requires_grad for p in clf.hf.base_model.pooler.parameters())  # BERT's tanh pooler: unused
    assert all(p.requires_grad for p in clf.head.parameters())
    trainable, total = clf.parameter_counts()
    assert (trainable < total) and (train_layers != "head" or trainable == 32 * 2 + 2)


def test_auto_train_layers_per_model_kind(tiny_bert_dir, tiny_llama_dir):
    enc, _, _ = build_classifier(str(tiny_bert_dir), {0: "a", 1: "b"}, "auto", seed=0)
    dec, _, _ = build_classifier(str(tiny_llama_dir), {0: "a", 1: "b"}, "auto", seed=0)
    assert (enc.train_layers, dec.train_layers) == (3, 1)  # encoders: every block; decoders: the last
    assert not any(p.requires_grad for p in enc.hf.base_model.embeddings.parameters())
    assert all(p.requires_grad for p in enc.backbone.layers[0].parameters())


@pytest.mark.parametrize("pooling", ["cls", "mean", "max", "attention"])
def test_encoder_feature_cache_matches_the_uncached_path(tiny_bert_dir, pooling):
    clf, tok, _ = build_classifier(str(tiny_bert_dir), {0: "a", 1: "b", 2: "c"}, 1, pooling=pooling, seed=0)
    clf.eval()
    enc = encode(tok, A, [0, 1, 2, 0], 64, pairs=B)  # joint pairs: [CLS] a [SEP] b [SEP]
    assert enc.input_ids[0].count(tok.sep_token_id) == 2
    plain = collate(enc, range(4), tok.pad_token_id, use_features=False)
    build_features(clf, enc, tok.pad_token_id, torch.device("cpu"))
    cached = collate(enc, range(4), tok.pad_token_id, use_features=True)
    with torch.no_grad():
        a = clf(input_ids=plain["input_ids"], attention_mask=plain["attention_mask"])
    b = clf(hidden=cached["hidden"], attention_mask=cached["attention_mask"])
    assert (a - b).abs().max().item() <= 1e-5
    b.sum().backward()
    assert clf.backbone.layers[-1].output.dense.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("fixture", ["tiny_bert_dir", "tiny_llama_dir"])
def test_siamese_pairs_read_each_text_alone(request, fixture):
    clf, tok, _ = build_classifier(str(request.getfixturevalue(fixture)), {0: "score"}, 1, seed=0,
                                   problem_type="regression", siamese=True)
    clf.eval()
    assert clf.head.in_features == 3 * clf.hf.config.hidden_size
    enc = encode(tok, A, [1.0, 0.0, 0.5, 0.2], 64, pairs=B, pair_mode="siamese")
    assert enc.pair_ids is not None and enc.lengths.tolist() == [max(len(a), len(b)) for a, b in
                                                                  zip(enc.input_ids, enc.pair_ids)]
    plain = collate(enc, range(4), tok.pad_token_id, use_features=False)
    with torch.no_grad():
        out = clf(**{k: v for k, v in plain.items() if k != "labels"})
        u = clf.pooled(plain["input_ids"], plain["attention_mask"])
        v = clf.pooled(plain["input_ids_b"], plain["attention_mask_b"])
    assert torch.allclose(out, clf.head(siamese_features(u, v)), atol=1e-6)
    assert plain["labels"].dtype == torch.float32 and out.shape == (4, 1)
    build_features(clf, enc, tok.pad_token_id, torch.device("cpu"))
    assert enc.pair_features is not None
    cached = collate(enc, range(4), tok.pad_token_id, use_features=True)
    with torch.no_grad():
        again = clf(**{k: v for k, v in cached.items() if k != "labels"})
    assert (out - again).abs().max().item() <= 1e-5


def test_decoder_pairs_are_joined_by_a_template(tiny_gpt2_dir):
    _, tok, _ = build_classifier(str(tiny_gpt2_dir), {0: "a", 1: "b"}, 1, seed=0)
    enc = encode(tok, ["one"], None, 64, pairs=["two"], pair_template="{a}\n\n{b}")
    assert tok.decode(enc.input_ids[0]) == "one\n\ntwo"
