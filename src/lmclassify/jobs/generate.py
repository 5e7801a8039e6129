"""The `generate` job: a short continuation of a prompt from any decoder (built-in name,
.gguf, directory), greedy or sampled. It is the first step of the book's recipe: before
fine-tuning, check that the weights loaded into a model that still writes sensible text
(a mis-mapped GGUF tensor or a wrong tokenizer shows at once as gibberish)."""
from __future__ import annotations

import time
from typing import Optional

import torch

from ..config import GenerateConfig
from ..errors import LmClassifyError, first_line
from ..inference.embeddings import is_lmclassify_dir
from ..models.backbone import is_encoder
from ..models.load import load_config, load_tokenizer
from ..models.resolve import DEFAULT_DECODER, resolve_model
from ..training.device import pick_device


def prompt_ids(tok, prompt: str, input_template: str) -> tuple[list[int], str]:
    """Token ids of the prompt and the frame used: a chat model (``auto``/``chat``) reads it
    as a user turn followed by the assistant's header, so it answers rather than continues."""
    if input_template not in ("auto", "chat", "none"):
        raise LmClassifyError(f"--input-template must be auto, chat or none, not {input_template!r}")
    if input_template != "none" and getattr(tok, "chat_template", None):
        text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                       add_generation_prompt=True)
        return tok(text, add_special_tokens=False)["input_ids"], "chat"
    if input_template == "chat":
        raise LmClassifyError("--input-template chat needs a tokenizer with a chat template")
    return tok(prompt)["input_ids"], "none"


def load_causal_lm(model: str):
    """(tokenizer, AutoModelForCausalLM) for a decoder; encoders and fine-tuned classifiers
    are refused in one line, since neither has a language-model head to write with."""
    if is_lmclassify_dir(model):
        raise LmClassifyError(f"{model} is a fine-tuned lmclassify classifier: its head predicts labels, not "
                              f"tokens; generate with its base model instead (lmclassify.json names it)")
    path = resolve_model(model)
    config = load_config(path)
    if is_encoder(config):
        raise LmClassifyError(f"{model} is an encoder ({config.model_type}): it reads text but cannot write it; "
                              f"generate needs a decoder, e.g. {DEFAULT_DECODER}")
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(path)
    try:
        lm = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, use_safetensors=True)
    except (ValueError, OSError) as e:
        raise LmClassifyError(f"{model}: transformers has no text-generation model for it ({first_line(e)})") \
            from None
    return tok, lm


def generate(model: str = DEFAULT_DECODER, prompt: Optional[str] = None, *,
             options: Optional[GenerateConfig] = None, input_template: str = "auto", seed: int = 123,
             device: str = "auto") -> dict:
    """Continue ``prompt`` (or ``options.prompt``) with transformers' ``generate``: greedy at
    temperature 0, else sampled (seeded). Returns ``{"model", "prompt", "text",
    "new_tokens", "stopped", "input_template", "seconds"}``; ``text`` is the continuation only.

    >>> generate("smollm2-135m", "What is the capital of France?")["text"]   # doctest: +SKIP
    'The capital of France is Paris.'
    """
    from transformers import GenerationConfig

    o = options or GenerateConfig()
    if prompt is not None:
        o = GenerateConfig(prompt=prompt, max_new_tokens=o.max_new_tokens, temperature=o.temperature)
    o.check()
    tok, lm = load_causal_lm(model)
    dev = pick_device(device)
    lm = lm.to(dev).eval()
    ids, frame = prompt_ids(tok, o.prompt, input_template)
    sample = o.temperature > 0
    # A config of our own, not the checkpoint's: its sampling defaults would make "greedy" random.
    gc = GenerationConfig(max_new_tokens=o.max_new_tokens, do_sample=sample,
                          temperature=o.temperature if sample else None, top_k=None, top_p=None,
                          pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    with torch.inference_mode():
        x = torch.tensor([ids], device=dev)
        out = lm.generate(input_ids=x, attention_mask=torch.ones_like(x), generation_config=gc)
    seconds = time.perf_counter() - t0
    new = out[0, len(ids):].tolist()
    stopped = "eos" if new and tok.eos_token_id is not None and new[-1] == tok.eos_token_id else "length"
    return {"model": str(model), "prompt": o.prompt, "text": tok.decode(new, skip_special_tokens=True),
            "new_tokens": len(new), "token_ids": new, "stopped": stopped, "input_template": frame,
            "temperature": o.temperature, "seconds": seconds}
