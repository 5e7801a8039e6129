"""Entity-level metrics for token classification (seqeval, conlleval rules), and spans.

An entity counts as found only when its type and its exact word span both match. The
default (non-strict) seqeval mode is conlleval's: an ``I-x`` after ``O`` or after another
type starts an entity, as a tagger without a CRF will sometimes write.
"""
from __future__ import annotations

import warnings
from typing import Optional, Sequence

from seqeval.metrics.sequence_labeling import get_entities, precision_recall_fscore_support


def entity_metrics(true_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]],
                   loss: Optional[float] = None, types: Sequence[str] = ()) -> dict:
    """Keys: ``loss`` (if given), ``entity_precision``, ``entity_recall``, ``entity_f1``
    (micro over entities), ``precision_macro``/``recall_macro``/``f1_macro`` (unweighted mean
    over entity types), ``accuracy`` (= ``token_accuracy``, over words, O included),
    ``per_class`` ({type: {precision, recall, f1, support}}, every type in ``types`` listed),
    ``n`` (sentences), ``n_tokens``, ``n_entities`` (true), ``n_predicted``.

    >>> m = entity_metrics([["B-loc", "I-loc", "O"]], [["B-loc", "I-loc", "O"]])
    >>> m["entity_f1"], m["token_accuracy"]
    (1.0, 1.0)
    """
    true_tags, pred_tags = [list(s) for s in true_tags], [list(s) for s in pred_tags]
    if len(true_tags) != len(pred_tags):
        raise ValueError(f"{len(true_tags)} true sentences but {len(pred_tags)} predicted")
    bad = [i for i, (t, p) in enumerate(zip(true_tags, pred_tags)) if len(t) != len(p)]
    if bad:
        raise ValueError(f"sentence {bad[0]} has {len(true_tags[bad[0]])} true tags but "
                         f"{len(pred_tags[bad[0]])} predicted")
    n_tok = sum(len(s) for s in true_tags)
    correct = sum(a == b for t, p in zip(true_tags, pred_tags) for a, b in zip(t, p))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zero_division=0 is the answer we want, not a warning
        p, r, f, _ = precision_recall_fscore_support(true_tags, pred_tags, average="micro", zero_division=0)
        pm, rm, fm, _ = precision_recall_fscore_support(true_tags, pred_tags, average="macro", zero_division=0)
        pc, rc, fc, sc = precision_recall_fscore_support(true_tags, pred_tags, average=None, zero_division=0)
    # seqeval's per-type order: sorted types found in truth or predictions
    found = sorted({e[0] for s in true_tags + pred_tags for e in get_entities(s)})
    per = {t: {"precision": float(pc[i]), "recall": float(rc[i]), "f1": float(fc[i]), "support": int(sc[i])}
           for i, t in enumerate(found)}
    for t in types:
        per.setdefault(t, {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0})
    out = {} if loss is None else {"loss": float(loss)}
    out.update({
        "entity_precision": float(p), "entity_recall": float(r), "entity_f1": float(f),
        "precision_macro": float(pm), "recall_macro": float(rm), "f1_macro": float(fm),
        "accuracy": correct / max(n_tok, 1), "token_accuracy": correct / max(n_tok, 1),
        "per_class": dict(sorted(per.items())),
        "n": len(true_tags), "n_tokens": n_tok,
        "n_entities": sum(len(get_entities(s)) for s in true_tags),
        "n_predicted": sum(len(get_entities(s)) for s in pred_tags),
    })
    return out


def entity_types(tags: Sequence[str]) -> list[str]:
    """The entity types of a tag set: ['B-loc', 'I-loc', 'O'] -> ['loc']."""
    return sorted({t[2:] for t in tags if t != "O"})


def spans(tags: Sequence[str], offsets: Sequence[tuple[int, int]], text: str,
          scores: Optional[Sequence[float]] = None) -> list[dict]:
    """Entities as character spans: ``{"label", "start", "end", "text", "score", "words"}``,
    where ``words`` is the [first, last + 1) word range and ``score`` the mean probability
    of the predicted tags over the entity's words.

    >>> spans(["B-loc", "I-loc", "O"], [(0, 3), (4, 8), (9, 11)], "New York is")
    [{'label': 'loc', 'start': 0, 'end': 8, 'text': 'New York', 'words': [0, 2]}]
    """
    out = []
    for label, a, b in get_entities(list(tags)):
        start, end = offsets[a][0], offsets[b][1]
        e = {"label": label, "start": start, "end": end, "text": text[start:end], "words": [a, b + 1]}
        if scores is not None:
            e["score"] = round(float(sum(scores[a:b + 1]) / (b + 1 - a)), 6)
        out.append(e)
    return out
