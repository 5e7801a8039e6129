"""--feature-precision int8 (or bf16): an int8 copy of the frozen blocks (or CPU autocast)
computes the training split's cached states; the network itself, validation and test stay fp32."""
import pytest
import torch

from helpers import build_classifier
from lmclassify.data.batching import encode
from lmclassify.models.int8 import Int8Linear
from lmclassify.training.feature_cache import build_features

pytestmark = pytest.mark.one_thread
TEXTS = ["a short one", "a much longer text than the first one here", "mid length text", "x"]


@pytest.mark.parametrize("fixture", ["tiny_llama_dir", "tiny_bert_dir", "tiny_gpt2_dir"])
def test_int8_states_track_fp32_and_leave_the_network_fp32(request, fixture, tmp_path):
    clf, tok, _ = build_classifier(str(request.getfixturevalue(fixture)), {0: "a", 1: "b"}, 1, seed=0)
    fp32 = build_features(clf, encode(tok, TEXTS, [0, 1, 0, 1], 64), tok.pad_token_id, torch.device("cpu"))
    int8 = build_features(clf, encode(tok, TEXTS, [0, 1, 0, 1], 64), tok.pad_token_id, torch.device("cpu"),
                          precision="int8")
    for a, b in zip(fp32.features, int8.features):
        assert a.shape == b.shape
        assert ((a - b).abs().max() / a.abs().max()).item() < 0.1
    assert any(not torch.equal(a, b) for a, b in zip(fp32.features, int8.features))  # really int8
    assert not any(isinstance(m, Int8Linear) for m in clf.modules())  # the network is untouched
    # spilled to disk, the two precisions never share a file
    build_features(clf, encode(tok, TEXTS, [0, 1, 0, 1], 64), tok.pad_token_id, torch.device("cpu"),
                   spill_dir=tmp_path)
    build_features(clf, encode(tok, TEXTS, [0, 1, 0, 1], 64), tok.pad_token_id, torch.device("cpu"),
                   spill_dir=tmp_path, precision="int8")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 2 and names[0].endswith("-int8.f32") != names[1].endswith("-int8.f32")


def test_fp32_where_no_kernel_wins(tiny_llama_dir, monkeypatch):
    monkeypatch.setenv("LMCLASSIFY_INT8_KERNEL", "fp32")
    clf, tok, _ = build_classifier(str(tiny_llama_dir), {0: "a", 1: "b"}, 1, seed=0)
    a = build_features(clf, encode(tok, TEXTS, [0, 1, 0, 1], 64), tok.pad_token_id, torch.device("cpu"))
    b = build_features(clf, encode(tok, TEXTS, [0, 1, 0, 1], 64), tok.pad_token_id, torch.device("cpu"),
                       precision="int8")
    assert all(torch.equal(x, y) for x, y in zip(a.features, b.features))


def test_fit_with_int8_cache_reports_fp32_validation(tiny_llama_dir):
    """Only the training split is int8: the validation metrics are what the fp32 model says."""
    from lmclassify import TextClassifier

    texts, labels = ["good film", "bad film", "great fun", "awful", "fine", "dull"] * 3, ["p", "n"] * 9
    clf = TextClassifier(str(tiny_llama_dir), epochs=1, batch_size=4, progress=False, device="cpu",
                         feature_precision="int8")
    clf.fit(texts, labels, validation=(texts[:6], labels[:6]))
    assert clf.train_config_.feature_precision == "int8"
    val = clf._encoded["validation"]
    fresh = build_features(clf.module_, encode(clf.tokenizer_, texts[:6], None, 256), clf.pad_id,
                           torch.device("cpu"))
    assert all(torch.equal(x, y) for x, y in zip(val.features, fresh.features))
    assert not any(isinstance(m, Int8Linear) for m in clf.module_.modules())


@pytest.mark.parametrize("fixture, expected", [("tiny_llama_dir", "int8"), ("tiny_bert_dir", "fp32")])
def test_default_is_auto_for_decoders_only_and_records_what_ran(request, fixture, expected, monkeypatch):
    """Decoders default to the faster of an int8 and a bf16 cache (both measured within 0.3
    points of fp32); encoders were not measured and stay fp32. The saved config holds what
    the run did: int8 where only an integer kernel wins, bf16 where only bf16 does, fp32
    where neither does."""
    from lmclassify import TextClassifier

    texts, labels = ["good film", "bad film", "great fun", "awful", "fine", "dull"] * 2, ["p", "n"] * 6

    def ran(int8: str, bf16: str) -> str:
        monkeypatch.setenv("LMCLASSIFY_INT8_KERNEL", int8)
        monkeypatch.setenv("LMCLASSIFY_BF16", bf16)
        clf = TextClassifier(str(request.getfixturevalue(fixture)), epochs=1, batch_size=4, progress=False,
                             device="cpu", train_layers=1).fit(texts, labels)
        return clf.train_config_.feature_precision

    assert ran("int_mm", "fp32") == expected
    assert ran("fp32", "bf16") == ("bf16" if expected != "fp32" else "fp32")
    assert ran("fp32", "fp32") == "fp32"  # nothing beats fp32: the run says fp32
    assert ran("int_mm", "bf16") == ("bf16" if expected != "fp32" else "fp32")  # both win: bf16


@pytest.mark.parametrize("fixture", ["tiny_chat_llama_dir", "tiny_bert_dir", "tiny_gpt2_dir"])
def test_bf16_states_track_fp32_where_the_cpu_does_bf16(request, fixture, monkeypatch):
    """--feature-precision bf16 (forced here: this CPU may lack native bf16) runs the frozen
    blocks under CPU autocast; the chat frame's shared prefix stays fp32 and mixes with it."""
    clf, tok, _ = build_classifier(str(request.getfixturevalue(fixture)), {0: "a", 1: "b"}, 1, seed=0)
    fp32 = build_features(clf, encode(tok, TEXTS, [0, 1, 0, 1], 64), tok.pad_token_id, torch.device("cpu"))
    monkeypatch.setenv("LMCLASSIFY_BF16", "bf16")
    bf16 = build_features(clf, encode(tok, TEXTS, [0, 1, 0, 1], 64), tok.pad_token_id, torch.device("cpu"),
                          precision="bf16")
    for a, b in zip(fp32.features, bf16.features):
        assert a.shape == b.shape and b.dtype == torch.float32
        assert ((a - b).abs().max() / a.abs().max()).item() < 0.05
    assert any(not torch.equal(a, b) for a, b in zip(fp32.features, bf16.features))  # really bf16
    assert all(p.dtype == torch.float32 for p in clf.parameters())  # the network is untouched
    monkeypatch.setenv("LMCLASSIFY_BF16", "fp32")  # bf16 not faster here: the cache is fp32
    again = build_features(clf, encode(tok, TEXTS, [0, 1, 0, 1], 64), tok.pad_token_id, torch.device("cpu"),
                           precision="bf16")
    assert all(torch.equal(a, b) for a, b in zip(fp32.features, again.features))


def test_fit_records_bf16_only_where_it_ran(tiny_llama_dir, monkeypatch):
    from lmclassify import TextClassifier

    texts, labels = ["good film", "bad film", "great fun", "awful", "fine", "dull"] * 2, ["p", "n"] * 6
    for env, expected in (("bf16", "bf16"), ("fp32", "fp32")):
        monkeypatch.setenv("LMCLASSIFY_BF16", env)
        clf = TextClassifier(str(tiny_llama_dir), epochs=1, batch_size=4, progress=False, device="cpu",
                             feature_precision="bf16").fit(texts, labels)
        assert clf.train_config_.feature_precision == expected
