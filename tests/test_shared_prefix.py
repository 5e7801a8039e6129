"""A decoder's feature cache computes the tokens every text starts with (an instruct
model's chat frame) once and reuses their keys/values: the states must be the ones a
full pass over each text gives."""
import pytest
import torch

from helpers import build_classifier
from lmclassify.data.batching import encode
from lmclassify.training import feature_cache
from lmclassify.training.feature_cache import build_features, shared_prefix

pytestmark = pytest.mark.one_thread
TEXTS = ["a short one", "a much longer text than the first one here", "mid length text", "x", "a b c d e f"]


def test_shared_prefix_counts_leading_tokens_common_to_all():
    assert shared_prefix([[1, 2, 3, 4], [1, 2, 3], [1, 2, 5, 6]]) == 2
    assert shared_prefix([[1, 2, 3], [1, 2, 3]]) == 2  # each keeps a token of its own
    assert shared_prefix([[1, 2], [3, 2]]) == 0
    assert shared_prefix([[1, 2, 3]]) == 0  # one text: nothing to share


def _states(clf, tok, texts, **kw):
    return build_features(clf, encode(tok, texts, None, 64), tok.pad_token_id, torch.device("cpu"), **kw).features


@pytest.mark.parametrize("fixture", ["tiny_chat_llama_dir", "tiny_gpt2_dir"])
@pytest.mark.parametrize("train_layers", [1, 2])  # of 3 blocks
def test_reused_prefix_gives_the_full_pass_states(request, fixture, train_layers, monkeypatch):
    clf, tok, built = build_classifier(str(request.getfixturevalue(fixture)), {0: "a", 1: "b"}, train_layers,
                                       seed=0)
    texts = TEXTS if built.input_template == "chat" else ["the film " + t for t in TEXTS]  # GPT-2: no frame
    ids = encode(tok, texts, None, 64).input_ids
    assert shared_prefix(ids) >= 2
    calls = []
    real = clf.backbone.run_to
    monkeypatch.setattr(clf.backbone, "run_to", lambda *a: calls.append(a[1].shape) or real(*a))
    reused = _states(clf, tok, texts)
    assert all(shape[1] <= max(map(len, ids)) - shared_prefix(ids) for shape in calls)  # the prefix is not rerun
    monkeypatch.setattr(feature_cache, "shared_prefix", lambda _ids: 0)
    full = _states(clf, tok, texts)
    for a, b in zip(reused, full):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_int8_cache_reuses_the_fp32_prefix(tiny_chat_llama_dir, monkeypatch):
    monkeypatch.setenv("LMCLASSIFY_INT8_KERNEL", "int_mm")
    clf, tok, _ = build_classifier(str(tiny_chat_llama_dir), {0: "a", 1: "b"}, 1, seed=0)
    n = shared_prefix(encode(tok, TEXTS, None, 64).input_ids)
    int8 = _states(clf, tok, TEXTS, precision="int8")
    fp32 = _states(clf, tok, TEXTS)
    for a, b in zip(int8, fp32):
        torch.testing.assert_close(a[:n], b[:n], rtol=1e-4, atol=1e-5)  # the shared part: fp32, exactly
        assert ((a - b).abs().max() / b.abs().max()).item() < 0.1


def test_encoders_share_nothing(tiny_bert_dir, monkeypatch):
    """[CLS] starts every text, but an encoder's states depend on the whole text."""
    clf, tok, _ = build_classifier(str(tiny_bert_dir), {0: "a", 1: "b"}, 1, seed=0)
    assert shared_prefix(encode(tok, TEXTS, None, 64).input_ids) >= 1
    monkeypatch.setattr(clf.backbone, "prefix_cache", lambda *a: pytest.fail("an encoder shared a prefix"))
    _states(clf, tok, TEXTS)
