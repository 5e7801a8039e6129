"""Small helpers several test modules share."""
from __future__ import annotations

from lmclassify.models.load import build_network


def build_classifier(model, id2label: dict, train_layers=1, **kw):
    """A fresh sequence network and its tokenizer, as the estimators build them."""
    b = build_network("sequence", str(model), id2label, train_layers=train_layers, **kw)
    return b.network, b.tokenizer, b


def sms_rows(sms_file) -> list[tuple[str, str]]:
    """(label, text) per line of the SMS Spam Collection."""
    return [tuple(line.split("\t", 1)) for line in sms_file.read_text(encoding="utf-8").splitlines() if line]
