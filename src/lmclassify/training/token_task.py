"""The token-classification task: word labels aligned to sub-word pieces, loss, decoding
(argmax or CRF Viterbi) and entity-level metrics, in the shape the training loop asks for.

Alignment: the first piece of each word carries the word's tag; the other pieces, special
tokens and padding carry -100 and are ignored. Decoding reads the first pieces only, so
one tag comes back per word.

Fitting the one training loop: ``Encoded.labels`` holds one label list per sentence, all
padded with -100 to the same length L, so the loop's collate stacks a batch into (B, L);
and while the loop runs the model pads its outputs to L (``TokenTagger.pad_to``), so its
evaluation can stack them. ``loss``/``correct``/``metrics`` trim both to a common length.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data.batching import Encoded, iterate, sorted_batches
from ..evaluation.entities import entity_metrics, entity_types

IGNORE = -100


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
                 max_length: Optional[int]) -> tuple[Encoded, list[list[Optional[int]]]]:
    """Tokenise pre-split sentences; returns the encoded split and each piece's word index.

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
    return Encoded(list(be["input_ids"]), labels), word_ids


def first_pieces(x: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather the kept positions of each row to the left: (B, T, ...) -> (B, W, ...) and
    a (B, W) mask, W = most kept positions in a row. Order within a row is kept."""
    lengths = keep.sum(1)
    W = int(lengths.max()) if len(lengths) else 0
    idx = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :W]  # kept positions first
    if x.ndim == 3:
        out = x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    else:
        out = x.gather(1, idx)
    return out, torch.arange(W, device=x.device) < lengths.unsqueeze(1)


class TokenTask:
    """Per-word tags; cross-entropy over first pieces, or the CRF's negative log-likelihood."""

    name = "token_classification"
    # What the loop logs per evaluation as val_<key>, and --monitor may name.
    record_keys = ("loss", "accuracy", "f1_macro", "entity_f1", "entity_precision", "entity_recall")

    @staticmethod
    def higher_is_better(monitor: str) -> bool:
        return monitor != "val_loss"

    def __init__(self, tags: Sequence[str], crf=None):
        self.tags = list(tags)
        self.crf = crf  # the model's CRF module (its parameters train with the model)

    @staticmethod
    def _trim(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = min(logits.shape[1], labels.shape[1])  # past either length every label is -100
        return logits[:, :n], labels[:, :n].to(logits.device)

    def row_losses(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Loss summed per sentence (B,), and what the mean divides by: labelled words
        for cross-entropy, sentences for the CRF (its likelihood is per sentence)."""
        logits, labels = self._trim(logits, labels)
        if self.crf is not None:
            e, m = first_pieces(logits, labels != IGNORE)
            t, _ = first_pieces(labels, labels != IGNORE)
            return self.crf.nll(e, t, m), len(labels)
        ce = F.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=IGNORE, reduction="none")
        return ce.sum(1), int((labels != IGNORE).sum())

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        rows, n = self.row_losses(logits, labels)
        return rows.sum() / max(n, 1)

    def decode(self, logits: torch.Tensor, keep: torch.Tensor, scores: bool = True) -> tuple[list, list]:
        """Tag ids at the kept positions of each row, and (if ``scores``) the probability of
        each tag: softmax, or the CRF's marginal for the Viterbi tag."""
        e, m = first_pieces(logits.float(), keep)
        if self.crf is not None:
            paths = self.crf.decode(e, m)
        else:
            paths = [row[:int(n)].tolist() for row, n in zip(e.argmax(-1), m.sum(1))]
        if not scores:
            return paths, []
        probs = (self.crf.marginals(e, m) if self.crf is not None else e.softmax(-1)).cpu()
        return paths, [probs[b, torch.arange(len(p)), torch.tensor(p, dtype=torch.long)].tolist()
                       for b, p in enumerate(paths)]

    def correct(self, logits: torch.Tensor, labels: torch.Tensor) -> float:
        """Sum over sentences of each one's word accuracy (the loop divides by sentences)."""
        logits, labels = self._trim(logits.detach(), labels)
        keep = labels != IGNORE
        if self.crf is not None:
            pred, _ = first_pieces(logits, keep)
            pred = self.crf.decode(pred, first_pieces(labels, keep)[1])
        else:
            pred = [row.tolist() for row in first_pieces(logits.argmax(-1), keep)[0]]
        truth, mask = first_pieces(labels, keep)
        total = 0.0
        for p, t, n in zip(pred, truth, mask.sum(1)):
            if n:
                total += float(sum(a == b for a, b in zip(p, t[:int(n)].tolist()))) / int(n)
        return total

    @torch.no_grad()
    def metrics(self, logits, labels, chunk: int = 256) -> dict:
        """Entity metrics over the words that have a piece, from stacked (N, L, C) logits (or
        a list of (T_i, C) tensors) and padded label lists: what the loop evaluates with."""
        labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        true, pred, loss_sum, n_loss = [], [], 0.0, 0
        for s in range(0, len(labels), chunk):
            lab = labels[s:s + chunk]
            lg = logits[s:s + chunk] if torch.is_tensor(logits) else _pad_stack(logits[s:s + chunk], lab.shape[1])
            lg, lab = self._trim(lg.float(), lab)
            keep = lab != IGNORE
            rows, n = self.row_losses(lg, lab)
            loss_sum, n_loss = loss_sum + float(rows.sum()), n_loss + n
            paths, _ = self.decode(lg, keep, scores=False)
            truth, mask = first_pieces(lab, keep)
            for p, t, k in zip(paths, truth, mask.sum(1)):
                true.append([self.tags[i] for i in t[:int(k)].tolist()])
                pred.append([self.tags[i] for i in p])
        return entity_metrics(true, pred, loss=loss_sum / max(n_loss, 1), types=entity_types(self.tags))


def _pad_stack(rows: Sequence[torch.Tensor], length: int) -> torch.Tensor:
    n = max(length, max(r.shape[0] for r in rows))
    return torch.stack([F.pad(r, (0, 0, 0, n - r.shape[0])) for r in rows])


@torch.inference_mode()
def tag_words(model, task: TokenTask, enc: Encoded, word_ids: list[list[Optional[int]]], n_words: Sequence[int],
              pad_id: int, device: torch.device, batch_size: int = 64) -> tuple[list, list, float]:
    """Tag ids and their probabilities per word, per sentence in input order, and the mean
    loss. Words without a piece are tagged O with probability 1."""
    from .loop import _autocast, _model_inputs, _to

    model.eval()
    pad_to, model.pad_to = model.pad_to, None
    tags, probs = [None] * len(enc), [None] * len(enc)
    loss_sum, n_loss, o = 0.0, 0, task.tags.index("O")
    try:
        for idx, batch in iterate(enc, sorted_batches(enc.lengths, batch_size), pad_id, enc.features is not None):
            with _autocast(device):
                logits = model(**_model_inputs(_to(batch, device))).float()
            labels = batch["labels"][:, :logits.shape[1]].to(device)
            keep = labels != IGNORE
            rows, n = task.row_losses(logits, labels)
            loss_sum, n_loss = loss_sum + float(rows.sum()), n_loss + n
            paths, scores = task.decode(logits, keep)
            keep = keep.cpu()
            for r, i in enumerate(idx):
                tags[i], probs[i] = [o] * n_words[i], [1.0] * n_words[i]
                words = [w for k, w in enumerate(word_ids[i]) if k < keep.shape[1] and keep[r, k]]
                for w, t, p in zip(words, paths[r], scores[r]):
                    tags[i][w], probs[i][w] = t, p
    finally:
        model.pad_to = pad_to
    return tags, probs, loss_sum / max(n_loss, 1)
