"""Model arguments: built-in names, local dirs, .gguf files (dequantised once, cached
atomically, rebuilt when corrupt), hub ids failing fast offline."""
from __future__ import annotations

import time

import pytest

from lmclassify.errors import LmClassifyError
from lmclassify.models import resolve
from lmclassify.models.resolve import locate_builtin, resolve_model


def test_unknown_name_names_the_alternatives():
    with pytest.raises(LmClassifyError, match="smollm2-135m"):
        resolve_model("definitely-not-a-model")


def test_hub_id_fails_fast_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(LmClassifyError, match="not reachable"):
        resolve_model("openai-community/gpt2")
    assert time.perf_counter() - t0 < 5


def test_hub_id_fails_fast_when_unreachable(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(resolve, "_hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(LmClassifyError, match="local model directory"):
        resolve_model("someorg/model")


def test_directory_without_config_is_refused(tmp_path):
    with pytest.raises(LmClassifyError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_local_hf_directory_is_used_as_is(tiny_gpt2_dir):
    assert resolve_model(str(tiny_gpt2_dir)) == tiny_gpt2_dir


def test_builtin_packages_are_found_without_import():
    assert locate_builtin("smollm2-135m").suffix == ".gguf"
    assert locate_builtin("minilm-l6").name == "config.json"


@pytest.mark.slow
def test_gguf_is_dequantised_once_then_loads_fast_and_heals(tmp_path, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("LMCLASSIFY_CACHE", str(tmp_path))
    gguf = locate_builtin("smollm2-135m")
    d = resolve_model(str(gguf))
    assert (d / "model.safetensors").is_file() and (d / "tokenizer.json").is_file()
    assert not list(d.parent.glob("*.tmp-*"))
    t0 = time.perf_counter()
    assert resolve_model("smollm2-135m") == d
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
    assert time.perf_counter() - t0 < 3
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 30
    # a real LM: "The capital of France is" should rank " Paris" highly
    from lmclassify.models.load import load_tokenizer

    tok = load_tokenizer(d)
    ids = tok("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        top = model(ids).logits[0, -1].topk(5).indices.tolist()
    assert tok(" Paris", add_special_tokens=False)["input_ids"][0] in top
    # a partial write (truncated weights) is detected and rebuilt
    w = d / "model.safetensors"
    with open(w, "r+b") as f:
        f.truncate(w.stat().st_size // 2)
    assert not resolve._cache_ok(d)
    assert resolve_model("smollm2-135m") == d and resolve._cache_ok(d)
