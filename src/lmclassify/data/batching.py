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
    unpadded (T_i, H) tensor per example, when the feature cache is in use."""

    input_ids: list[list[int]]
    labels: Optional[list[int]] = None
    features: Optional[list[torch.Tensor]] = None

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.input_ids), dtype=np.int64, count=len(self.input_ids))

    @property
    def n_tokens(self) -> int:
        return int(self.lengths.sum())


def encode(tokenizer, texts: Sequence[str], labels: Optional[Sequence[int]], max_length: Optional[int]) -> Encoded:
    """Tokenise without padding (padding happens per batch). Empty texts keep one token
    so that every example has a position to read."""
    ids = tokenizer(list(texts), truncation=max_length is not None, max_length=max_length,
                    add_special_tokens=True)["input_ids"]
    fallback = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.pad_token_id
    ids = [x if x else [fallback] for x in ids]
    return Encoded(ids, None if labels is None else list(labels))


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


def collate(enc: Encoded, idx: Sequence[int], pad_id: int, use_features: bool) -> dict:
    """Right-pad one batch: ids (B, T) or features (B, T, H), mask (B, T), labels (B,)."""
    seqs = [enc.input_ids[i] for i in idx]
    T = max(len(s) for s in seqs)
    mask = torch.zeros(len(seqs), T, dtype=torch.long)
    for r, s in enumerate(seqs):
        mask[r, :len(s)] = 1
    batch = {"attention_mask": mask}
    if use_features:
        feats = [enc.features[i] for i in idx]
        hidden = feats[0].new_zeros(len(feats), T, feats[0].shape[-1])
        for r, f in enumerate(feats):
            hidden[r, :f.shape[0]] = f
        batch["hidden"] = hidden
    else:
        ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, :len(s)] = torch.tensor(s, dtype=torch.long)
        batch["input_ids"] = ids
    if enc.labels is not None:
        batch["labels"] = torch.tensor([enc.labels[i] for i in idx])
    return batch


def iterate(enc: Encoded, batches: Sequence[np.ndarray], pad_id: int, use_features: bool) -> Iterator[tuple[np.ndarray, dict]]:
    for idx in batches:
        yield idx, collate(enc, idx, pad_id, use_features)
