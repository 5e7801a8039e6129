"""Small helpers several test modules share."""
from __future__ import annotations

from lmclassify.models.load import build_network


def build_classifier(model, id2label: dict, train_layers=1, **kw):
    """A fresh sequence network and its tokenizer, as the estimators build them."""
    b = build_network("sequence", str(model), id2label, train_layers=train_layers, **kw)
    return b.network, b.tokenizer, b
