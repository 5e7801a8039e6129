"""Tokenised splits and batches: truncation, length-grouped shuffling, dynamic padding.

Padding is always on the right inside lmclassify; the model reads the last real token
from the mask, so left-padded input from elsewhere gives the same answer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import numpy as np
import torch


@dataclass
class Encoded:
    """One split after tokenisation; ``features`` are cached boundary states, one
    unpadded (T_i, H) tensor per example, when the feature cache is in use.

    ``labels`` hold what the task's loss wants per example (a class id, a multi-hot row,
    a float). Siamese pairs keep the second text apart: ``pair_ids``/``pair_features``."""

    input_ids: list[list[int]]
    labels: Optional[list] = None
    features: Optional[list[torch.Tensor]] = None
    pair_ids: Optional[list[list[int]]] = None
    pair_features: Optional[list[torch.Tensor]] = None

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per example (the longer side of a siamese pair: what padding costs)."""
        n = np.fromiter((len(x) for x in self.input_ids), dtype=np.int64, count=len(self.input_ids))
        if self.pair_ids is not None:
            n = np.maximum(n, np.fromiter((len(x) for x in self.pair_ids), dtype=np.int64, count=len(n)))
        return n

    @property
    def n_tokens(self) -> int:
        return int(self.lengths.sum())


def _tokenize(tokenizer, texts: Sequence[str], pairs: Optional[Sequence[str]], max_length: Optional[int]):
    # With a pair, truncation="longest_first" trims the longer text first (transformers' default).
    ids = tokenizer(list(texts), None if pairs is None else list(pairs), truncation=max_length is not None,
                    max_length=max_length, add_special_tokens=True)["input_ids"]
    fallback = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.pad_token_id
    return [x if x else [fallback] for x in ids]


def encode(tokenizer, texts: Sequence[str], labels: Optional[Sequence], max_length: Optional[int],
           pairs: Optional[Sequence[str]] = None, pair_mode: str = "joint",
           pair_template: Optional[str] = None) -> Encoded:
    """Tokenise without padding (padding happens per batch). Empty texts keep one token
    so that every example has a position to read.

    Text pairs: ``joint`` encodes both as one sequence, with the tokenizer's own pair
    format (BERT: [CLS] a [SEP] b [SEP]) or, where a tokenizer has none (decoders), joined
    by ``pair_template`` ("{a}...{b}"); ``siamese`` encodes each text alone."""
    labels = None if labels is None else list(labels)
    if pairs is None:
        return Encoded(_tokenize(tokenizer, texts, None, max_length), labels)
    if pair_mode == "siamese":
        return Encoded(_tokenize(tokenizer, texts, None, max_length), labels,
                       pair_ids=_tokenize(tokenizer, pairs, None, max_length))
    if pair_template is not None:
        joined = [pair_template.format(a=a, b=b) for a, b in zip(texts, pairs)]
        return Encoded(_tokenize(tokenizer, joined, None, max_length), labels)
    return Encoded(_tokenize(tokenizer, texts, pairs, max_length), labels)


def length_grouped_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                           mega: int = 50) -> list[np.ndarray]:
    """Shuffle, then sort within mega-batches of ``mega * batch_size`` so each batch holds
    texts of similar length (little padding) while the order stays random."""
    order = rng.permutation(len(lengths))
    batches = []
    for start in range(0, len(order), mega * batch_size):
        chunk = order[start:start + mega * batch_size]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Deterministic longest-first batches for evaluation and prediction."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def _pad(ids: list[list[int]], features: Optional[list[torch.Tensor]], idx: Sequence[int], pad_id: int,
         use_features: bool, suffix: str = "") -> dict:
    """Right-pad one side: ids (B, T) or features (B, T, H), and mask (B, T)."""
    seqs = [ids[i] for i in idx]
    T = max(len(s) for s in seqs)
    mask = torch.zeros(len(seqs), T, dtype=torch.long)
    for r, s in enumerate(seqs):
        mask[r, :len(s)] = 1
    batch = {"attention_mask" + suffix: mask}
    if use_features:
        feats = [features[i] for i in idx]
        hidden = feats[0].new_zeros(len(feats), T, feats[0].shape[-1])
        for r, f in enumerate(feats):
            hidden[r, :f.shape[0]] = f
        batch["hidden" + suffix] = hidden
    else:
        out = torch.full((len(seqs), T), pad_id, dtype=torch.long)
        for r, s in enumerate(seqs):
            out[r, :len(s)] = torch.tensor(s, dtype=torch.long)
        batch["input_ids" + suffix] = out
    return batch


def collate(enc: Encoded, idx: Sequence[int], pad_id: int, use_features: bool) -> dict:
    """One batch: ids (B, T) or features (B, T, H), mask (B, T), labels (B,) long class ids,
    (B, C) float multi-hot rows or (B,) float targets; a siamese pair's second text adds
    the same keys with a ``_b`` suffix."""
    batch = _pad(enc.input_ids, enc.features, idx, pad_id, use_features)
    if enc.pair_ids is not None:
        batch.update(_pad(enc.pair_ids, enc.pair_features, idx, pad_id, use_features, suffix="_b"))
    if enc.labels is not None:
        batch["labels"] = torch.tensor([enc.labels[i] for i in idx])
    return batch


def iterate(enc: Encoded, batches: Sequence[np.ndarray], pad_id: int, use_features: bool) -> Iterator[tuple[np.ndarray, dict]]:
    for idx in batches:
        yield idx, collate(enc, idx, pad_id, use_features)
