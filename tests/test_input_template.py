"""Instruct decoders read each text framed as a user turn; the frame travels in the
tokenizer so plain transformers applies it too."""
from __future__ import annotations

import json
import subprocess
import sys

from lmclassify.models.input_template import apply_input_template, chat_frame
from lmclassify.models.load import load_tokenizer


def test_frame_is_one_user_turn_without_system_prompt(tiny_chat_llama_dir):
    tok = load_tokenizer(tiny_chat_llama_dir)
    assert chat_frame(tok) == ("<|endoftext|>user\n", "<|endoftext|>\n<|endoftext|>assistant\n")
    plain = tok("spam here", add_special_tokens=False)["input_ids"]
    assert apply_input_template(tok, "auto", is_encoder=False) == "chat"
    framed = tok("spam here")["input_ids"]
    assert framed[:3] == tok("<|endoftext|>user\n", add_special_tokens=False)["input_ids"]
    assert framed[3:3 + len(plain)] == plain
    assert tok.decode(framed).endswith("assistant\n")
    short = tok("word " * 200, truncation=True, max_length=16)["input_ids"]
    assert len(short) == 16 and tok.decode(short).endswith("assistant\n")  # truncation keeps the frame


def test_no_template_for_base_models_and_encoders(tiny_gpt2_dir, tiny_chat_llama_dir):
    assert apply_input_template(load_tokenizer(tiny_gpt2_dir), "auto", is_encoder=False) == "none"
    assert apply_input_template(load_tokenizer(tiny_chat_llama_dir), "auto", is_encoder=True) == "none"
    assert apply_input_template(load_tokenizer(tiny_chat_llama_dir), "none", is_encoder=False) == "none"


def test_pipeline_applies_the_saved_frame(tiny_chat_llama_dir, tmp_path):
    from lmclassify import TextClassifier

    texts = ["win a free prize now", "see you at lunch", "call me", "URGENT claim your cash", "ok"] * 4
    labels = ["spam", "ham", "ham", "spam", "ham"] * 4
    clf = TextClassifier(str(tiny_chat_llama_dir), epochs=1, progress=False).fit(texts, labels)
    assert clf.input_template_ == "chat"
    clf.save(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "lmclassify.json").read_text())["input_template"] == "chat"
    code = ("import json,sys; from transformers import pipeline; "
            f"p = pipeline('text-classification', model={str(tmp_path / 'm')!r}, device='cpu'); "
            "print(json.dumps([r['score'] for r in p(json.load(sys.stdin))]))")
    proc = subprocess.run([sys.executable, "-c", code], input=json.dumps(texts[:5]), capture_output=True,
                          text=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    theirs = json.loads(proc.stdout.strip().splitlines()[-1])
    ours = TextClassifier.load(tmp_path / "m", device="cpu").predict_proba(texts[:5]).max(1)
    assert max(abs(a - b) for a, b in zip(theirs, ours)) < 1e-4
