"""Texts longer than ``max_length``: keep the head and the tail, or read them in windows.

A window is just another encoded row: ``Windows`` remembers which document each row came
from, so the model, the loop's batches and the feature cache stay row-based (the cache
caches windows), and ``merge`` folds the rows' outputs back into one output per document
in the one place every caller goes through (``training.loop.predict_logits``).

Every window carries the text's own special tokens (BERT's [CLS]/[SEP], a decoder's chat
frame: whatever the tokenizer put before and after the text), so each window is read the
way a whole text is.

Training reads each window with its document's label (per-window loss). For ``mean``
aggregation that loss bounds the document's: cross-entropy is convex in the logits, so
CE(mean of window logits) <= mean of the windows' CE; batches stay length-grouped rows
(no document has to fit in one batch) and a resumed run stays bit-identical.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from ..errors import LmClassifyError

LONG_TEXT = ("truncate", "head-tail", "chunk")
AGGREGATES = ("mean", "max")
# head-tail keeps this share of the budget from the start, the rest from the end: Sun et al.
# 2019 ("How to fine-tune BERT for text classification") found 128 + 382 of 510 best on IMDb.
HEAD_SHARE = 0.25
# Default overlap between neighbouring windows, as a fraction of max_length: enough context
# at a cut, and at most ~1/8 more tokens than the text holds.
DEFAULT_OVERLAP = 1 / 8


@dataclass
class Windows:
    """Which document each encoded row reads, and how rows fold back into documents.

    ``doc[r]``: the document of row ``r`` (every document has at least one row, in order).
    ``row_labels``: the training label of each row (the document's; for token tasks each
    window's own per-piece labels). ``picks`` (token tasks): per document, for each word
    that has a piece, the (row, position) of that word's first piece in the window where
    it sits most centrally."""

    doc: list[int]
    n_docs: int
    aggregate: str = "mean"
    row_labels: Optional[list] = None
    picks: Optional[list[list[tuple[int, int]]]] = None


def default_overlap(max_length: int, stride: Optional[int]) -> int:
    return int(max_length * DEFAULT_OVERLAP) if stride is None else int(stride)


def split_specials(ids: Sequence[int], special: Sequence[int]) -> tuple[list[int], list[int], list[int]]:
    """(prefix, content, suffix): the special tokens before and after the text, and the text.

    >>> split_specials([101, 7, 8, 9, 102], [1, 0, 0, 0, 1])
    ([101], [7, 8, 9], [102])
    """
    n = len(ids)
    a = 0
    while a < n and special[a]:
        a += 1
    b = n
    while b > a and special[b - 1]:
        b -= 1
    return list(ids[:a]), list(ids[a:b]), list(ids[b:])


def window_budget(max_length: int, n_special: int) -> int:
    budget = max_length - n_special
    if budget < 1:
        raise LmClassifyError(f"--max-length {max_length} leaves no room for text beside the model's "
                              f"{n_special} special tokens; raise --max-length")
    return budget


def head_tail(content: Sequence[int], budget: int) -> list[int]:
    """The first ``HEAD_SHARE`` of ``budget`` tokens and the rest from the end.

    >>> head_tail(list(range(20)), 8)
    [0, 1, 14, 15, 16, 17, 18, 19]
    """
    if len(content) <= budget:
        return list(content)
    head = int(budget * HEAD_SHARE)
    return list(content[:head]) + list(content[len(content) - (budget - head):])


def spans(n: int, budget: int, overlap: int) -> list[tuple[int, int]]:
    """Equal windows over ``n`` tokens, at most ``budget`` long, neighbours sharing at least
    ``overlap`` tokens: the fewest windows that fit, each as short as that allows (so a text
    just past the budget costs two half windows, not two full ones).

    >>> spans(10, 4, 1)
    [(0, 4), (3, 7), (6, 10)]
    >>> spans(5, 8, 2)
    [(0, 5)]
    """
    if overlap >= budget:
        raise LmClassifyError(f"--stride {overlap} must be smaller than the window ({budget} tokens of text)")
    if n <= budget:
        return [(0, n)]
    w = math.ceil((n - overlap) / (budget - overlap))
    size = math.ceil((n + (w - 1) * overlap) / w)
    starts = [round(k * (n - size) / (w - 1)) for k in range(w)]
    return [(s, s + size) for s in starts]


def word_spans(word_ids: Sequence[int], budget: int, overlap: int) -> list[tuple[int, int]]:
    """Windows over pieces that start and end at word boundaries, each at most ``budget``
    pieces, neighbours sharing whole words of at most ``overlap`` pieces (a single word
    longer than ``budget`` is cut, keeping its first piece, which carries its label).

    >>> word_spans([0, 0, 1, 2, 2, 3, 4], 4, 1)
    [(0, 3), (2, 6), (5, 7)]
    """
    if overlap >= budget:
        raise LmClassifyError(f"--stride {overlap} must be smaller than the window ({budget} pieces of text)")
    n = len(word_ids)
    bounds = [j for j in range(n) if j == 0 or word_ids[j] != word_ids[j - 1]] + [n]
    out, a = [], 0
    while True:
        s, b = bounds[a], a + 1
        while b + 1 < len(bounds) and bounds[b + 1] - s <= budget:
            b += 1
        out.append((s, min(bounds[b], s + budget)))
        if bounds[b] >= n:
            return out
        a += 1
        while bounds[b] - bounds[a] > overlap:
            a += 1


def most_central(first_piece: dict[int, int], row_spans: Sequence[tuple[int, int, int, int]]) -> list[tuple[int, int]]:
    """For each word (in order), the (row, position) of its first piece in the window where
    it is farthest from either edge. ``row_spans``: (row, start, end, offset) per window,
    ``offset`` = the prefix length (where the window's first content piece sits)."""
    picks = []
    for w in sorted(first_piece):
        p = first_piece[w]
        best = max(((min(p - s, e - 1 - p), -r, r, off + p - s) for r, s, e, off in row_spans if s <= p < e))
        picks.append((best[2], best[3]))
    return picks


def merge(rows: Sequence[torch.Tensor], windows: Windows) -> list[torch.Tensor]:
    """Row outputs -> one output per document: (C,) rows by mean or max of their logits;
    per-token (T_r, C) rows by each word's most central window, (W_d, C) per document."""
    if windows.picks is not None:
        empty = rows[0].new_zeros((0, rows[0].shape[-1]))
        return [torch.stack([rows[r][p] for r, p in picks]) if picks else empty for picks in windows.picks]
    groups: list[list[torch.Tensor]] = [[] for _ in range(windows.n_docs)]
    for r, d in enumerate(windows.doc):
        groups[d].append(rows[r])
    stacked = [torch.stack(g) for g in groups]  # (n_windows, C) per document
    if windows.aggregate == "max":
        return [s.amax(0) for s in stacked]
    return [s.mean(0) for s in stacked]
