"""Language modelling as a task of the one loop: continued pretraining on unlabelled text.

Masked LM (encoders): transformers' ``DataCollatorForLanguageModeling`` chooses
``mlm_probability`` of the non-special tokens, puts [MASK] on 80 % of them, a random token
on 10 % and leaves 10 %; the loss is on the chosen positions only. Causal LM (decoders):
every position predicts the next token. Either way the loss is the mean cross-entropy over
the positions whose label is not -100, and the metrics are that loss and its perplexity.

The targets are made per batch (``prepare_batch``), each text's masking drawn from a
generator seeded by (seed, epoch, text): independent of the batch a text lands in, the
same after a resume, and the same validation masks at every evaluation (and for any model
scored on the same texts, so losses before and after pretraining compare).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from transformers import DataCollatorForLanguageModeling

from ..data.batching import Encoded
from ..errors import LmClassifyError
from .base import Task

IGNORE = -100
LM = "lm"  # the network a language-modelling task needs (``models/language_model.py``)


@dataclass
class TextsEncoded(Encoded):
    """Tokenised texts for language modelling: per piece, whether it is a special token
    (never masked) and, for whole-word masking, its character span (pieces that touch
    belong to one word, as transformers decides)."""

    special: Optional[list[list[int]]] = None
    offsets: Optional[list[list[tuple[int, int]]]] = None


class LanguageModeling(Task):
    kind = LM
    name = "language_modeling"
    network = LM
    main_metric = "perplexity"
    running_metric = None
    record_keys = ("loss", "perplexity")
    report_columns = ("loss", "perplexity", "tokens")
    lower_is_better = Task.lower_is_better | {"perplexity"}

    def __init__(self, tokenizer, causal: bool, mlm_probability: float = 0.15, whole_word_mask: bool = False,
                 seed: int = 0):
        self.tokenizer, self.causal, self.seed = tokenizer, causal, seed
        self.whole_word_mask = whole_word_mask and not causal
        self.collator = None
        if not causal:
            if tokenizer.mask_token is None:
                raise LmClassifyError("this tokenizer has no mask token, so the model cannot be trained as a masked "
                                      "LM; use --objective causal")
            if self.whole_word_mask and not tokenizer.is_fast:
                raise LmClassifyError("--whole-word-mask needs a fast tokenizer (tokenizer.json) to find words")
            # transformers replaces every chosen piece by [MASK] under whole-word masking (it
            # has no random-token rule for words); saying so up front spares its warning.
            rule = {"mask_replace_prob": 1.0, "random_replace_prob": 0.0} if self.whole_word_mask else {}
            self.collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=mlm_probability,
                                                            whole_word_mask=self.whole_word_mask, **rule)

    def describe(self) -> str:
        if self.causal:
            return "causal LM (next token)"
        c = self.collator
        rule = "whole words, all [MASK]" if self.whole_word_mask else \
            f"{c.mask_replace_prob:.0%} [MASK] / {c.random_replace_prob:.0%} random / " \
            f"{1 - c.mask_replace_prob - c.random_replace_prob:.0%} kept"
        return f"masked LM ({c.mlm_probability:.0%} of tokens; {rule})"

    def default_monitor(self) -> str:
        return "val_loss"

    # ---- data --------------------------------------------------------------------
    def encode(self, texts: Sequence[str], max_length: int) -> TextsEncoded:
        """Tokenise without padding, cut at ``max_length`` (``truncated`` counts the cut)."""
        texts = list(texts)
        be = self.tokenizer(texts, truncation=True, max_length=max_length, return_special_tokens_mask=True,
                            return_offsets_mapping=self.whole_word_mask)
        ids = [list(x) for x in be["input_ids"]]
        full = self.tokenizer(texts, truncation=False, verbose=False)["input_ids"]
        truncated = sum(len(a) < len(b) for a, b in zip(ids, full))
        offsets = [list(map(tuple, x)) for x in be["offset_mapping"]] if self.whole_word_mask else None
        return TextsEncoded(ids, None, truncated=truncated, special=[list(x) for x in be["special_tokens_mask"]],
                            offsets=offsets)

    def _generator(self, epoch: Optional[int], i: int) -> torch.Generator:
        # evaluation draws from its own stream (0), each epoch from another
        seed = np.random.SeedSequence([self.seed, 0 if epoch is None else epoch + 1, int(i)]).generate_state(1)[0]
        return torch.Generator().manual_seed(int(seed))

    def prepare_batch(self, batch: dict, enc: TextsEncoded, idx: Sequence[int], epoch: Optional[int]) -> dict:
        """Inputs with their masked pieces replaced (MLM) and the targets, (B, T) each;
        ``targets`` is what the network scores, ``labels`` what ``loss`` averages over."""
        ids = batch["input_ids"]  # (B, T), right-padded
        inputs, labels = ids.clone(), torch.full_like(ids, IGNORE)
        for r, i in enumerate(idx):
            n = len(enc.input_ids[i])
            if self.causal:
                labels[r, :n - 1] = ids[r, 1:n]  # position t predicts token t + 1
                continue
            self.collator.generator = self._generator(epoch, i)
            offsets = np.asarray([enc.offsets[i]]) if self.whole_word_mask else None
            x, y = self.collator.torch_mask_tokens(ids[r:r + 1, :n].clone(),
                                                   special_tokens_mask=torch.tensor([enc.special[i]]),
                                                   offset_mapping=offsets)
            inputs[r, :n], labels[r, :n] = x[0], y[0]
        return {**batch, "input_ids": inputs, "labels": labels, "targets": labels}

    # ---- training ----------------------------------------------------------------
    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the positions with a label (``logits``: the network's
        (B, T, 2) per-position losses)."""
        keep = labels != IGNORE
        return logits[..., 0][keep].sum() / keep.sum().clamp_min(1)

    def gather(self, rows: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.cat(list(rows))  # (sum of T_i, 2): only sums over tokens are needed

    def metrics(self, logits: torch.Tensor, labels=None) -> dict:
        n = float(logits[:, 1].sum())
        loss = float((logits[:, 0] * logits[:, 1]).sum()) / max(n, 1.0)
        return {"loss": loss, "perplexity": float(np.exp(min(loss, 700.0))), "tokens": int(n)}

    def score(self, metrics: dict) -> float:
        return -float(metrics["loss"])
