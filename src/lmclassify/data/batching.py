"""Tokenised splits and batches: truncation, length-grouped shuffling, dynamic padding.

Padding is always on the right inside lmclassify; the model reads the last real token
from the mask, so left-padded input from elsewhere gives the same answer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import numpy as np
import torch

from ..errors import LmClassifyError
from .windows import (Windows, default_overlap, head_tail, most_central, spans, split_specials, window_budget,
                      word_spans)


@dataclass
class Encoded:
    """One split after tokenisation; ``features`` are cached boundary states, one
    unpadded (T_i, H) tensor per example, when the feature cache is in use.

    ``labels`` hold what the task's loss wants per example (a class id, a multi-hot row,
    a float). Siamese pairs keep the second text apart: ``pair_ids``/``pair_features``.
    ``truncated`` counts the examples that ``max_length`` cut (a pair once, whichever
    side was cut); ``over_length`` those longer than ``max_length``, cut or read in windows.
    ``windows`` (long texts read in several rows, ``data/windows.py``): rows are windows,
    while ``labels``, ``word_ids`` and ``n_words`` stay per document."""

    input_ids: list[list[int]]
    labels: Optional[list] = None
    features: Optional[list[torch.Tensor]] = None
    pair_ids: Optional[list[list[int]]] = None
    pair_features: Optional[list[torch.Tensor]] = None
    word_ids: Optional[list[list[Optional[int]]]] = None  # token tasks: each piece's word (None: special)
    n_words: Optional[list[int]] = None  # token tasks: words per sentence, with or without a piece
    truncated: int = 0  # examples cut by max_length
    over_length: Optional[int] = None  # examples longer than max_length (None: as truncated)
    windows: Optional[Windows] = None  # several rows per document: which document each row reads

    def __post_init__(self):
        if self.over_length is None:
            self.over_length = self.truncated

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

    def rows(self, idx: Sequence[int]) -> "Encoded":
        """These examples alone (an encoding without windows: one row per example)."""
        if self.windows is not None:
            raise ValueError("an encoding read in windows has no one row per example")
        pick = lambda xs: None if xs is None else [xs[i] for i in idx]  # noqa: E731
        return Encoded(pick(self.input_ids), pick(self.labels), pick(self.features), pick(self.pair_ids),
                       pick(self.pair_features), pick(self.word_ids), pick(self.n_words))


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
           pair_template: Optional[str] = None, long_text: str = "truncate", stride: Optional[int] = None,
           aggregate: str = "mean") -> Encoded:
    """Tokenise without padding (padding happens per batch). Empty texts keep one token
    so that every example has a position to read. Texts past ``max_length``: ``long_text``
    (truncate, head-tail or chunk; ``data/windows.py``).

    Text pairs: ``joint`` encodes both as one sequence, with the tokenizer's own pair
    format (BERT: [CLS] a [SEP] b [SEP]) or, where a tokenizer has none (decoders), joined
    by ``pair_template`` ("{a}...{b}"); ``siamese`` encodes each text alone."""
    labels = None if labels is None else list(labels)
    if long_text != "truncate" and max_length is not None:
        if pairs is not None and (pair_mode == "siamese" or pair_template is None):
            raise LmClassifyError(f"--long-text {long_text} reads single texts (and decoders' joined pairs); "
                                  f"these text pairs take --long-text truncate")
        if pairs is not None:  # a decoder's joint pair is one text
            texts = [pair_template.format(a=a, b=b) for a, b in zip(texts, pairs)]
        return _encode_long(tokenizer, texts, labels, max_length, long_text, stride, aggregate)
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


def _encode_long(tokenizer, texts: Sequence[str], labels: Optional[list], max_length: int, long_text: str,
                 stride: Optional[int], aggregate: str) -> Encoded:
    """head-tail: one row per text, its middle dropped; chunk: a text past ``max_length``
    becomes several overlapping windows, each framed by the text's special tokens."""
    full = tokenizer(list(texts), truncation=False, add_special_tokens=True, return_special_tokens_mask=True,
                     verbose=False)
    fallback = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.pad_token_id
    rows: list[list[int]] = []
    doc: list[int] = []
    over = 0
    for d, (ids, special) in enumerate(zip(full["input_ids"], full["special_tokens_mask"])):
        if len(ids) <= max_length:
            rows.append(ids if ids else [fallback])
            doc.append(d)
            continue
        over += 1
        pre, content, post = split_specials(ids, special)
        budget = window_budget(max_length, len(pre) + len(post))
        if long_text == "head-tail":
            rows.append(pre + head_tail(content, budget) + post)
            doc.append(d)
            continue
        for s, e in spans(len(content), budget, default_overlap(max_length, stride)):
            rows.append(pre + content[s:e] + post)
            doc.append(d)
    if len(rows) == len(texts):  # one row per text: nothing to merge
        return Encoded(rows, labels, truncated=over if long_text == "head-tail" else 0, over_length=over)
    win = Windows(doc, len(texts), aggregate, None if labels is None else [labels[d] for d in doc])
    return Encoded(rows, labels, over_length=over, windows=win)


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
                 max_length: Optional[int], windows: bool = False, stride: Optional[int] = None) -> Encoded:
    """Tokenise pre-split sentences; labels sit on each word's first piece, padded with
    -100 to one length so the loop's collate stacks them.

    Without ``tag_ids`` (prediction) first pieces are marked with 0, so decoding finds
    the words the same way in both cases. Words past ``max_length`` pieces, or that the
    tokenizer drops entirely (a lone zero-width space), get no piece and are tagged O.
    With ``windows``, no word is dropped: a sentence past ``max_length`` is read in
    overlapping windows of whole words (``_encode_word_windows``)."""
    if windows and max_length is not None:
        full = tokenizer([list(w) for w in words], is_split_into_words=True, truncation=False,
                         add_special_tokens=True, verbose=False)
        if any(len(x) > max_length for x in full["input_ids"]):
            return _encode_word_windows(full, words, tag_ids, max_length, stride)
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


def _encode_word_windows(full, words: Sequence[Sequence[str]], tag_ids: Optional[Sequence[Sequence[int]]],
                         max_length: int, stride: Optional[int]) -> Encoded:
    """Rows are windows (per-piece labels in ``windows.row_labels``, for training); the
    document side holds, per sentence, the words that have a piece (``word_ids``) and
    their tags (``labels``), which the merged outputs line up with one position per word."""
    rows: list[list[int]] = []
    row_words: list[list[Optional[int]]] = []
    doc: list[int] = []
    picks, doc_words = [], []
    over = 0
    for d in range(len(words)):
        ids, wid = list(full["input_ids"][d]), full.word_ids(d)
        pre, content, post = split_specials(ids, [w is None for w in wid])
        cw = wid[len(pre):len(pre) + len(content)]
        if len(ids) > max_length:
            over += 1
            budget = window_budget(max_length, len(pre) + len(post))
            row_spans = word_spans(cw, budget, default_overlap(max_length, stride))
        else:
            row_spans = [(0, len(content))]
        first: dict[int, int] = {}
        for j, w in enumerate(cw):
            if w is not None:
                first.setdefault(w, j)
        placed = []
        for s, e in row_spans:
            placed.append((len(rows), s, e, len(pre)))
            rows.append(pre + content[s:e] + post)
            row_words.append([None] * len(pre) + cw[s:e] + [None] * len(post))
            doc.append(d)
        picks.append(most_central(first, placed))
        doc_words.append(sorted(first))

    def tags(d: int) -> Sequence[int]:
        return tag_ids[d] if tag_ids is not None else [0] * len(words[d])

    row_labels = [align_labels(wid, tags(doc[r])) for r, wid in enumerate(row_words)]
    labels = [[int(tags(d)[w]) for w in ws] for d, ws in enumerate(doc_words)]
    for padded in (row_labels, labels):
        L = max((len(x) for x in padded), default=0)
        padded[:] = [x + [IGNORE] * (L - len(x)) for x in padded]
    return Encoded(rows, labels, word_ids=doc_words, n_words=[len(w) for w in words], over_length=over,
                   windows=Windows(doc, len(words), "mean", row_labels, picks))


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


# What one more batch costs beyond its tokens (Python, per-layer dispatch), in padded
# tokens: ``sorted_batches`` trades padding against batch count with it.
BATCH_OVERHEAD_TOKENS = 32


def sorted_batches(lengths: np.ndarray, batch_size: int, budget: Optional[int] = None,
                   overhead: int = BATCH_OVERHEAD_TOKENS) -> list[np.ndarray]:
    """Deterministic longest-first batches for evaluation, prediction and the feature cache:
    at most ``batch_size`` texts (and ``budget`` padded tokens, a longer text alone), cut
    where padding costs least, i.e. the fewest padded tokens plus ``overhead`` per batch (an
    exact dynamic programme over the sorted lengths). Cutting every ``batch_size`` texts
    wasted half of a small split's tokens on padding (SMS spam validation, 32 per batch:
    9,712 padded for 6,529 real; cut here: 6,812)."""
    order = np.argsort(-lengths, kind="stable")
    srt = lengths[order].astype(np.int64).tolist()
    n = len(srt)
    cost = [0.0] + [math.inf] * n
    start = [0] * (n + 1)  # where the last batch of the best cut of the first i texts begins
    for i in range(1, n + 1):
        for j in range(i - 1, max(i - batch_size, 0) - 1, -1):  # batch j..i-1, longest srt[j]
            if budget is not None and (i - j) * srt[j] > budget and i - j > 1:
                break
            c = cost[j] + (i - j) * srt[j] + overhead
            if c < cost[i]:
                cost[i], start[i] = c, j
    out, i = [], n
    while i > 0:
        out.append(order[start[i]:i])
        i = start[i]
    return out[::-1]


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
    labels = enc.labels if enc.windows is None else enc.windows.row_labels  # a window: its own labels
    if labels is not None:
        batch["labels"] = torch.tensor([labels[i] for i in idx])
    return batch


def iterate(enc: Encoded, batches: Sequence[np.ndarray], pad_id: int, use_features: bool) -> Iterator[tuple[np.ndarray, dict]]:
    for idx in batches:
        yield idx, collate(enc, idx, pad_id, use_features)
