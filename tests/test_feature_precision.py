"""--feature-precision int8 (or bf16): an int8 (or bf16) copy of the frozen blocks computes
the training split's cached states; the network itself, validation and test stay fp32."""
import pytest
import torch

from helpers import build_classifier
from lmclassify.data.batching import encode
from lmclassify.models.bf16 import bf16_prefix_copy
from lmclassify.models.frozen_prefix import sharing_copy
from lmclassify.models.int8 import Int8Linear, int8_prefix_copy
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
    where neither does; where both do, bf16 on a CPU with AMX, int8 on one without."""
    from lmclassify import TextClassifier
    from lmclassify.training import feature_cache

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
    real = feature_cache.machine_info
    for flags, both in ((["avx512_bf16", "amx_bf16"], "bf16"), (["avx512_vnni", "avx512_bf16"], "int8")):
        monkeypatch.setattr(feature_cache, "machine_info", lambda: {**real(), "flags": flags})
        assert ran("int_mm", "bf16") == (both if expected != "fp32" else "fp32")  # both win


@pytest.mark.parametrize("fixture", ["tiny_chat_llama_dir", "tiny_bert_dir", "tiny_gpt2_dir"])
def test_bf16_states_track_fp32_where_the_cpu_does_bf16(request, fixture, monkeypatch):
    """--feature-precision bf16 (forced here: this CPU may lack native bf16) runs the
    embeddings and frozen blocks in bf16 throughout, the chat frame's shared prefix too."""
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


def test_a_fit_decides_its_cache_precision_once(tiny_llama_dir, monkeypatch):
    """A machine too busy to time goes by its CPU flags and is timed at the next lookup:
    the run decides once, so what it records (int8) is what computed its states."""
    from lmclassify import TextClassifier
    from lmclassify.models.kernel_choice import KernelChoice
    from lmclassify.training import feature_cache

    answers = iter([KernelChoice("int_mm", "CPU flags; machine busy, not timed")])  # then: timed, fp32 wins
    monkeypatch.setattr(feature_cache, "_int8_choice", lambda model: next(answers, KernelChoice(None, "timed")))
    built, real = [], feature_cache._int8_prefix
    monkeypatch.setattr(feature_cache, "_int8_prefix",
                        lambda model, kernel: built.append(kernel) or real(model, kernel))
    texts, labels = ["good film", "bad film", "great fun", "awful", "fine", "dull"] * 2, ["p", "n"] * 6
    clf = TextClassifier(str(tiny_llama_dir), epochs=1, batch_size=4, progress=False, device="cpu",
                         feature_precision="int8").fit(texts, labels, validation=(texts[:4], labels[:4]))
    assert clf.train_config_.feature_precision == "int8" and built == ["int_mm"]


@pytest.mark.parametrize("fixture", ["tiny_llama_dir", "tiny_bert_dir", "tiny_gpt2_dir"])
def test_faster_copies_share_what_they_do_not_change(request, fixture):
    """The int8 and bf16 copies of the frozen blocks hold no second copy of the weights they
    leave alone: the trained blocks, final norm and head are the network's own tensors, and
    the network keeps its fp32 modules."""
    clf, _, _ = build_classifier(str(request.getfixturevalue(fixture)), {0: "a", 1: "b"}, 1, seed=0)
    own = {n: p for n, p in clf.named_parameters()}
    plain = sharing_copy(clf)
    assert plain is not clf and all(p is own[n] for n, p in plain.named_parameters())
    trained = {id(p) for m in clf.trained_backbone() for p in m.parameters()} | {id(p) for p in clf.head.parameters()}
    assert trained and all(p.requires_grad for n, p in clf.named_parameters() if id(p) in trained)

    bf16 = bf16_prefix_copy(clf)
    base = {id(p) for p in clf.backbone.base.parameters()}
    for n, p in bf16.named_parameters():  # embeddings and frozen blocks bf16, the rest shared
        assert p.dtype == torch.bfloat16 if id(own[n]) in base - trained else p is own[n], n
    assert all(p.dtype == torch.bfloat16 for b in bf16.frozen_blocks() for p in b.parameters())
    assert all(p.dtype == torch.float32 for p in clf.parameters())  # the network is untouched

    int8 = int8_prefix_copy(clf, "int_mm")
    assert all(isinstance(m, Int8Linear) for b in int8.frozen_blocks() for m in b.modules()
               if type(m).__name__ in ("Linear", "Conv1D"))
    assert any(isinstance(m, Int8Linear) for b in int8.frozen_blocks() for m in b.modules())
    assert all(p is own[n] for n, p in int8.named_parameters() if n in own)
    assert not any(isinstance(m, Int8Linear) for m in clf.modules())


def test_states_found_on_disk_build_no_copy(tiny_chat_llama_dir, tmp_path, monkeypatch):
    """A resumed run reads its bf16 cache from its folder: the bf16 copy is not even built."""
    import lmclassify.models.bf16 as bf16_module

    clf, tok, _ = build_classifier(str(tiny_chat_llama_dir), {0: "a", 1: "b"}, 1, seed=0)
    monkeypatch.setenv("LMCLASSIFY_BF16", "bf16")
    copies = []
    real = bf16_module.bf16_prefix_copy
    monkeypatch.setattr(bf16_module, "bf16_prefix_copy", lambda m: copies.append(1) or real(m))
    enc = lambda: encode(tok, TEXTS, [0, 1, 0, 1], 64)  # noqa: E731
    first = build_features(clf, enc(), tok.pad_token_id, torch.device("cpu"), spill_dir=tmp_path, precision="bf16")
    assert copies == [1] and [p.name.endswith("-bf16all.f32") for p in tmp_path.iterdir()] == [True]
    again = build_features(clf, enc(), tok.pad_token_id, torch.device("cpu"), spill_dir=tmp_path, precision="bf16")
    assert copies == [1]
    assert all(torch.equal(a, b) for a, b in zip(first.features, again.features))
