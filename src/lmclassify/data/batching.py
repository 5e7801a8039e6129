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
    a float). Siamese pairs keep the second text apart: ``pair_ids``/``pair_features``.
    ``truncated`` counts the examples that ``max_length`` cut (a pair once, whichever
    side was cut)."""

    input_ids: list[list[int]]
    labels: Optional[list] = None
    features: Optional[list[torch.Tensor]] = None
    pair_ids: Optional[list[list[int]]] = None
    pair_features: Optional[list[torch.Tensor]] = None
    word_ids: Optional[list[list[Optional[int]]]] = None  # token tasks: each piece's word (None: special)
    n_words: Optional[list[int]] = None  # token tasks: words per sentence, with or without a piece
    truncated: int = 0  # examples cut by max_length

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


def _was_cut(tokenizer, texts: Sequence[str], pairs: Optional[Sequence[str]], max_length: Optional[int],
             ids: list[list[int]]) -> np.ndarray:
    """Which rows of ``ids`` (from ``_tokenize``) truncation cut. Only a row as long as
    ``max_length`` can have been cut, so only those are tokenised again, untruncated."""
    cut = np.zeros(len(ids), dtype=bool)
    if max_length is None:
        return cut
    rows = [i for i, x in enumerate(ids) if len(x) >= max_length]
    if rows:
        # verbose=False: no "longer than the model's maximum" warning for what was just cut
        full = tokenizer([texts[i] for i in rows], None if pairs is None else [pairs[i] for i in rows],
                         truncation=False, add_special_tokens=True, verbose=False)["input_ids"]
        cut[rows] = [len(x) > max_length for x in full]
    return cut


def _tokenize_counting(tokenizer, texts: Sequence[str], pairs: Optional[Sequence[str]],
                       max_length: Optional[int]) -> tuple[list[list[int]], np.ndarray]:
    texts = list(texts)
    pairs = None if pairs is None else list(pairs)
    ids = _tokenize(tokenizer, texts, pairs, max_length)
    return ids, _was_cut(tokenizer, texts, pairs, max_length, ids)


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
        ids, cut = _tokenize_counting(tokenizer, texts, None, max_length)
        return Encoded(ids, labels, truncated=int(cut.sum()))
    if pair_mode == "siamese":
        ids, cut = _tokenize_counting(tokenizer, texts, None, max_length)
        pair_ids, pair_cut = _tokenize_counting(tokenizer, pairs, None, max_length)
        return Encoded(ids, labels, pair_ids=pair_ids, truncated=int((cut | pair_cut).sum()))
    if pair_template is not None:
        joined = [pair_template.format(a=a, b=b) for a, b in zip(texts, pairs)]
        ids, cut = _tokenize_counting(tokenizer, joined, None, max_length)
        return Encoded(ids, labels, truncated=int(cut.sum()))
    ids, cut = _tokenize_counting(tokenizer, texts, pairs, max_length)
    return Encoded(ids, labels, truncated=int(cut.sum()))


IGNORE = -100  # a piece without a label of its own (not a word's first piece, special, padding)


def align_labels(word_ids: Sequence[Optional[int]], word_labels: Sequence[int]) -> list[int]:
    """Per-piece labels: the word's label on its first piece, -100 elsewhere.

    >>> align_labels([None, 0, 1, 1, 1, 2, None], [5, 7, 9])
    [-100, 5, 7, -100, -100, 9, -100]
    """
    out, prev = [], None
    for w in word_ids:
        out.append(IGNORE if w is None or w == prev else int(word_labels[w]))
        prev = w
    return out


def encode_words(tokenizer, words: Sequence[Sequence[str]], tag_ids: Optional[Sequence[Sequence[int]]],
                 max_length: Optional[int]) -> Encoded:
    """Tokenise pre-split sentences; labels sit on each word's first piece, padded with
    -100 to one length so the loop's collate stacks them.

    Without ``tag_ids`` (prediction) first pieces are marked with 0, so decoding finds
    the words the same way in both cases. Words past ``max_length`` pieces, or that the
    tokenizer drops entirely (a lone zero-width space), get no piece and are tagged O."""
    be = tokenizer([list(w) for w in words], is_split_into_words=True, truncation=max_length is not None,
                   max_length=max_length, add_special_tokens=True)
    word_ids = [be.word_ids(i) for i in range(len(words))]
    labels = [align_labels(wid, tag_ids[i] if tag_ids is not None else [0] * len(words[i]))
              for i, wid in enumerate(word_ids)]
    L = max((len(x) for x in labels), default=0)
    labels = [x + [IGNORE] * (L - len(x)) for x in labels]
    truncated = sum(len({w for w in wid if w is not None}) < len(ws) and len(wid) == max_length
                    for wid, ws in zip(word_ids, words)) if max_length else 0
    return Encoded(list(be["input_ids"]), labels, word_ids=word_ids, n_words=[len(w) for w in words],
                   truncated=truncated)


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
