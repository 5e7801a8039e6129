"""`lmclassify generate` (jobs/generate.py): greedy output is transformers' argmax path,
sampling is seeded, chat models read the prompt as a user turn, and models that cannot
write (encoders, fine-tuned classifiers) are refused in one line."""
from __future__ import annotations

import json

import pytest
import torch

from lmclassify.cli import main
from lmclassify.config import GenerateConfig
from lmclassify.errors import LmClassifyError
from lmclassify.jobs.generate import generate, prompt_ids

pytestmark = pytest.mark.one_thread


def _argmax_path(model_dir, ids: list[int], n: int) -> list[int]:
    """Greedy decoding by hand: the most likely next token, n times, full forward each time."""
    from transformers import AutoModelForCausalLM

    lm = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    ids = list(ids)
    out = []
    for _ in range(n):
        with torch.no_grad():
            nxt = int(lm(torch.tensor([ids])).logits[0, -1].argmax())
        out.append(nxt)
        ids.append(nxt)
    return out


@pytest.mark.parametrize("fixture", ["tiny_gpt2_dir", "tiny_llama_dir"])
def test_greedy_is_the_argmax_path(request, fixture):
    from transformers import AutoTokenizer

    model_dir = request.getfixturevalue(fixture)
    r = generate(str(model_dir), "The weather today is", options=GenerateConfig(max_new_tokens=6), device="cpu")
    ids = AutoTokenizer.from_pretrained(model_dir)("The weather today is")["input_ids"]
    want = _argmax_path(model_dir, ids, 6)
    eos = AutoTokenizer.from_pretrained(model_dir).eos_token_id
    if eos in want:  # generation stops at the end-of-text token
        want = want[:want.index(eos) + 1]
    assert r["token_ids"] == want and r["new_tokens"] == len(want)
    assert r["input_template"] == "none" and r["stopped"] in ("eos", "length")


def test_sampling_is_seeded(tiny_llama_dir):
    o = GenerateConfig(prompt="Once upon a time", max_new_tokens=8, temperature=2.0)
    a = generate(str(tiny_llama_dir), options=o, seed=1, device="cpu")["token_ids"]
    assert generate(str(tiny_llama_dir), options=o, seed=1, device="cpu")["token_ids"] == a
    assert generate(str(tiny_llama_dir), options=o, seed=2, device="cpu")["token_ids"] != a


def test_a_chat_model_reads_the_prompt_as_a_user_turn(tiny_chat_llama_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_chat_llama_dir)
    ids, frame = prompt_ids(tok, "Hello there", "auto")
    assert frame == "chat" and tok.decode(ids).endswith("Hello there<|endoftext|>\n<|endoftext|>assistant\n")
    plain, frame = prompt_ids(tok, "Hello there", "none")
    assert frame == "none" and tok.decode(plain) == "Hello there"
    r = generate(str(tiny_chat_llama_dir), "Hello there", options=GenerateConfig(max_new_tokens=3), device="cpu")
    assert r["input_template"] == "chat"


def test_chat_without_a_template_is_refused(tiny_gpt2_dir):
    from transformers import AutoTokenizer

    with pytest.raises(LmClassifyError, match="chat template"):
        prompt_ids(AutoTokenizer.from_pretrained(tiny_gpt2_dir), "hi", "chat")


def test_cli_prints_the_continuation_or_json(tiny_gpt2_dir, capsys):
    assert main(["generate", str(tiny_gpt2_dir), "--prompt", "Hi", "--max-new-tokens", "4", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["prompt"] == "Hi" and r["new_tokens"] <= 4 and r["temperature"] == 0.0
    assert main(["generate", str(tiny_gpt2_dir), "--prompt", "Hi", "--max-new-tokens", "4"]) == 0
    assert capsys.readouterr().out == r["text"] + "\n"


@pytest.mark.parametrize("args,message", [
    (["{bert}", "--prompt", "hi"], "is an encoder (bert): it reads text but cannot write it"),
    (["{gpt2}"], "give a prompt"),
    (["{gpt2}", "--prompt", "hi", "--max-new-tokens", "0"], "--max-new-tokens must be"),
    (["{gpt2}", "--prompt", "hi", "--temperature", "-1"], "--temperature must be"),
    (["{gpt2}", "--prompt", "hi", "--input-template", "chat"], "needs a tokenizer with a chat template"),
    (["no/such/dir/", "--prompt", "hi"], "unknown model"),
])
def test_bad_input_is_one_line(tiny_bert_dir, tiny_gpt2_dir, capsys, args, message):
    argv = ["generate"] + [a.replace("{bert}", str(tiny_bert_dir)).replace("{gpt2}", str(tiny_gpt2_dir)) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_a_fine_tuned_classifier_is_refused(tmp_path, tiny_gpt2_dir, capsys):
    from lmclassify import TextClassifier

    texts, labels = ["good", "bad", "fine", "awful"], ["p", "n", "p", "n"]
    TextClassifier(str(tiny_gpt2_dir), epochs=1, batch_size=4, device="cpu").fit(texts, labels).save(tmp_path / "r")
    assert main(["generate", str(tmp_path / "r"), "--prompt", "hi"]) == 2
    assert "fine-tuned lmclassify classifier" in capsys.readouterr().err


@pytest.mark.slow
def test_the_default_decoder_answers_a_simple_question():
    r = generate("smollm2-135m", "What is the capital of France?", options=GenerateConfig(max_new_tokens=16),
                 device="cpu")
    assert "Paris" in r["text"] and r["input_template"] == "chat"
