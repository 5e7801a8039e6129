"""Token labelling (NER): one IOB tag per word. Word tags are aligned to sub-word pieces
(the first piece of each word carries the word's tag; other pieces, special tokens and
padding carry -100 and are ignored), so one tag comes back per word. Loss is
cross-entropy over first pieces, or a CRF's negative log-likelihood; decoding is argmax
or Viterbi; metrics are entity-level (seqeval).

Fitting the one training loop: ``Encoded.labels`` holds one label list per sentence, all
padded with -100 to one length L, so the loop's collate stacks a batch into (B, L); the
network's (B, T, C) outputs are padded to a common length by ``gather``, and every
method trims logits and labels to a common length.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data.batching import IGNORE
from ..data.conll import tag_set
from ..data.labels import LabelMap
from ..errors import LmClassifyError
from ..evaluation.entities import entity_metrics, entity_types
from ..networks import TOKEN
from .base import Task, register
from .weights import parse_class_weights

_SHOW = 10


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


@register
class TokenLabels(Task):
    """Per-word tags; cross-entropy over first pieces, or the CRF's negative log-likelihood."""

    kind = "token"
    name = "token_classification"
    network = TOKEN
    main_metric = "entity_f1"
    record_keys = ("loss", "accuracy", "f1_macro", "entity_f1", "entity_precision", "entity_recall")
    report_columns = ("entity_precision", "entity_recall", "entity_f1", "f1_macro", "token_accuracy", "loss")

    def __init__(self, tags: Sequence[str], class_weights: Optional[torch.Tensor] = None):
        self.tags = list(tags)
        self.labels = LabelMap(self.tags)
        self.class_weights = class_weights
        self.crf = None  # the network's CRF (its parameters train with the network), see attach()

    @classmethod
    def fit(cls, labels: Sequence, *, separator: str = ",", class_weights: Optional[str] = None,
            positive_label: Any = None) -> "TokenLabels":
        tags = tag_set(labels)
        task = cls(tags)
        counts = np.bincount([i for row in task.encode_labels(labels) for i in row], minlength=len(tags))
        task.class_weights = parse_class_weights(class_weights, counts, tags)
        return task

    @classmethod
    def from_saved(cls, labels: Optional[dict], state: dict, positive_label: Any = None) -> "TokenLabels":
        w = state.get("class_weights")
        return cls(list(labels["classes"]), None if w is None else torch.tensor(w))

    def state(self) -> dict:
        return {} if self.class_weights is None else {"class_weights": self.class_weights.tolist()}

    def attach(self, network: torch.nn.Module) -> None:
        self.crf = network.crf
        if self.crf is not None and self.class_weights is not None:
            raise LmClassifyError("--class-weights weighs the per-word cross-entropy; a CRF's sentence "
                                  "likelihood has no class weights (drop one of --crf, --class-weights)")

    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.tags))

    def encode_labels(self, labels: Sequence[Sequence[str]],
                      where: Optional[Callable[[int, int], str]] = None) -> list[list[int]]:
        """Tag ids per sentence; a tag unseen in training is an error naming where it occurs
        (``where(sentence, word)``, e.g. a file line)."""
        index = {t: i for i, t in enumerate(self.tags)}
        unseen: dict[str, str] = {}
        out = []
        for i, sent in enumerate(labels):
            ids = []
            for j, t in enumerate(sent):
                k = index.get(t)
                if k is None:
                    unseen.setdefault(t, where(i, j) if where else f"sentence {i + 1}")
                    k = 0
                ids.append(k)
            out.append(ids)
        if unseen:
            listed = ", ".join(f"{t!r} ({w})" for t, w in list(unseen.items())[:_SHOW])
            raise LmClassifyError(f"tag(s) {listed} not seen in the training data (known: {', '.join(self.tags)}); "
                                  f"the model cannot predict them - add them to the training data or map them to O")
        return out

    # ---- training ----------------------------------------------------------------
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
        w = None if self.class_weights is None else self.class_weights.to(logits.device)
        ce = F.cross_entropy(logits.float().transpose(1, 2), labels, weight=w, ignore_index=IGNORE, reduction="none")
        if w is None:
            return ce.sum(1), int((labels != IGNORE).sum())
        # weighted mean, as cross_entropy(reduction="mean", weight=w) divides by the weights' sum
        return ce.sum(1), float(w[labels.clamp(min=0)][labels != IGNORE].sum())

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        rows, n = self.row_losses(logits, labels)
        return rows.sum() / max(n, 1e-12)

    def correct(self, logits: torch.Tensor, labels: torch.Tensor) -> float:
        """Sum over sentences of each one's word accuracy (the loop divides by sentences)."""
        logits, labels = self._trim(logits.detach(), labels)
        keep = labels != IGNORE
        paths, _ = self.decode(logits, keep, scores=False)
        truth, mask = first_pieces(labels, keep)
        total = 0.0
        for p, t, n in zip(paths, truth, mask.sum(1)):
            if n:
                total += float(sum(a == b for a, b in zip(p, t[:int(n)].tolist()))) / int(n)
        return total

    def gather(self, rows: Sequence[torch.Tensor]) -> torch.Tensor:
        """(T_i, C) rows of different lengths -> (N, T_max, C), zero-padded (the padding
        sits where every label is -100)."""
        n = max(r.shape[0] for r in rows)
        return torch.stack([F.pad(r, (0, 0, 0, n - r.shape[0])) for r in rows])

    # ---- using -------------------------------------------------------------------
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

    def word_tags(self, logits: torch.Tensor, labels: Sequence, word_ids: Sequence[Sequence[Optional[int]]],
                  n_words: Sequence[int], chunk: int = 256) -> tuple[list[list[str]], list[list[float]]]:
        """Per sentence, a tag and its probability for every word (``labels`` mark the first
        pieces; words without a piece - cut by max_length - are tagged O with probability 1)."""
        labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        tags, probs = [], []
        for s in range(0, len(labels), chunk):
            lg, lab = self._trim(logits[s:s + chunk].float(), labels[s:s + chunk])
            keep = lab != IGNORE
            paths, scores = self.decode(lg, keep)
            for r in range(len(lab)):
                i = s + r
                t, p = ["O"] * n_words[i], [1.0] * n_words[i]
                words = [w for k, w in enumerate(word_ids[i]) if k < keep.shape[1] and keep[r, k]]
                for w, tag, q in zip(words, paths[r], scores[r]):
                    t[w], p[w] = self.tags[tag], q
                tags.append(t)
                probs.append(p)
        return tags, probs

    @torch.no_grad()
    def metrics(self, logits: torch.Tensor, labels: Sequence, chunk: int = 256) -> dict:
        """Entity metrics over the words that have a piece, from (N, L, C) logits and padded
        label lists: what the loop evaluates with."""
        labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        true, pred, loss_sum, n_loss = [], [], 0.0, 0.0
        for s in range(0, len(labels), chunk):
            lg, lab = self._trim(logits[s:s + chunk].float(), labels[s:s + chunk])
            keep = lab != IGNORE
            rows, n = self.row_losses(lg, lab)
            loss_sum, n_loss = loss_sum + float(rows.sum()), n_loss + n
            paths, _ = self.decode(lg, keep, scores=False)
            truth, mask = first_pieces(lab, keep)
            for p, t, k in zip(paths, truth, mask.sum(1)):
                true.append([self.tags[i] for i in t[:int(k)].tolist()])
                pred.append([self.tags[i] for i in p])
        return entity_metrics(true, pred, loss=loss_sum / max(n_loss, 1e-12), types=entity_types(self.tags))

    def compatibility_notes(self) -> list[str]:
        if self.crf is None:
            return []
        return ["the CRF transitions live in lmclassify_extra.safetensors, which plain transformers ignores: "
                "its argmax tags can differ from lmclassify's Viterbi path"]
