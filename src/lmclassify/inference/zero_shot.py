"""Zero-shot baseline: the untuned base LM answers a prompt, scored by comparing the
next-token probabilities of the answer words. It shows what fine-tuning buys.

Binary sets ask "Is the following text '<positive>'? Answer with 'yes' or 'no'" and
compare P(yes) with P(no); more classes ask for the category and compare the first
token of each label name.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.batching import collate, encode, sorted_batches
from ..models.backbone import Backbone
from ..models.pooling import pool_last

BINARY_PROMPT = "Is the following text '{positive}'? Answer with 'yes' or 'no'.\n\nText: {text}"
MULTI_PROMPT = "Which category fits the following text: {labels}? Answer with the category name only.\n\nText: {text}"


class ZeroShot:
    """>>> ZeroShot("smollm2-135m").predict(texts, ["ham", "spam"], positive="spam")  # doctest: +SKIP"""

    def __init__(self, model: str = "smollm2-135m", max_length: int = 256, device: str = "cpu"):
        from transformers import AutoModelForCausalLM

        from ..errors import LmClassifyError
        from ..models.load import load_tokenizer
        from ..models.resolve import resolve_model

        path = resolve_model(model)
        self.tok = load_tokenizer(path)
        try:
            self.lm = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, use_safetensors=True).to(device).eval()
        except ValueError as e:
            raise LmClassifyError(f"{model} is not a generative (decoder) model; zero-shot needs one") from e
        self.backbone = Backbone(self.lm.base_model)
        self.max_length, self.device = max_length, torch.device(device)

    def _prompt(self, body: str) -> str:
        if getattr(self.tok, "chat_template", None):
            return self.tok.apply_chat_template([{"role": "user", "content": body}], tokenize=False,
                                                add_generation_prompt=True)
        return body + "\nAnswer:"

    def _first_token(self, word: str) -> int:
        spaced = " " if not getattr(self.tok, "chat_template", None) else ""
        return self.tok(spaced + word, add_special_tokens=False)["input_ids"][0]

    @torch.inference_mode()
    def next_token_logprobs(self, prompts: Sequence[str], token_ids: Sequence[int], batch_size: int = 16) -> np.ndarray:
        """(n_prompts, n_tokens) log-probabilities of each candidate as the next token."""
        enc = encode(self.tok, prompts, None, None)
        enc.input_ids = [x[-self.max_length:] for x in enc.input_ids]  # keep the question's end
        out = np.zeros((len(prompts), len(token_ids)), dtype=np.float32)
        head = self.lm.get_output_embeddings()
        for idx in tqdm(sorted_batches(enc.lengths, batch_size), desc="zero-shot", leave=False, disable=None):
            b = collate(enc, idx, self.tok.pad_token_id, use_features=False)
            mask = b["attention_mask"].to(self.device)
            h = pool_last(self.backbone.run(b["input_ids"].to(self.device), mask), mask)  # (B, H)
            logp = head(h).float().log_softmax(-1)[:, list(token_ids)]
            out[idx] = logp.cpu().numpy()
        return out

    def predict(self, texts: Sequence[str], labels: Sequence[str], positive: Optional[str] = None,
                batch_size: int = 16) -> list[int]:
        """Label ids (indices into ``labels``) for each text."""
        labels = [str(x) for x in labels]
        if len(labels) == 2:
            pos = labels.index(str(positive)) if positive is not None and str(positive) in labels else 1
            prompts = [self._prompt(BINARY_PROMPT.format(positive=labels[pos], text=t)) for t in texts]
            lp = self.next_token_logprobs(prompts, [self._first_token("yes"), self._first_token("no")], batch_size)
            return [pos if yes > no else 1 - pos for yes, no in lp]
        prompts = [self._prompt(MULTI_PROMPT.format(labels=", ".join(labels), text=t)) for t in texts]
        lp = self.next_token_logprobs(prompts, [self._first_token(x) for x in labels], batch_size)
        return lp.argmax(-1).tolist()
