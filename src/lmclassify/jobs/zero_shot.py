"""The `zero-shot` job: accuracy of the untuned base LM, prompted, on a test split — what
fine-tuning buys. Reads data exactly as `train` does (recipes included)."""
from __future__ import annotations

from typing import Optional

from ..config import RunConfig
from ..data.labels import LabelMap
from ..errors import LmClassifyError
from ..evaluation.metrics import classification_metrics
from ..inference.zero_shot import ZeroShot
from ..tasks import infer_task
from .config import merge
from .train import load_splits, resolve, wants_tokens


def zero_shot(config: RunConfig, limit: Optional[int] = None, batch_size: int = 16) -> dict:
    """Score the test split (a --test file whole, else the test part of the split data).
    Returns ``{"model", "test"}`` with classification metrics."""
    if config.data.test and not (config.data.data or config.data.train or config.data.recipe):
        config = merge(config, {"data": {"train": config.data.test}})
    cfg = resolve(config)
    if wants_tokens(cfg):
        raise LmClassifyError("zero-shot prompting scores one label per text; token labelling has no prompt here")
    train, _, test = load_splits(cfg.data, cfg.train.seed, tokens=False)
    test = test or train  # --test FILE: the whole file is the test set
    if train.pairs is not None or cfg.model.task not in ("auto", "single") or infer_task(train.labels) != "single":
        raise LmClassifyError("zero-shot prompting scores one label per single text; this data has text pairs, "
                              "several labels per text or numeric targets")
    if limit:
        test = test.subset(range(min(limit, len(test))))
    labels = LabelMap.fit(train.labels + test.labels)
    names = [str(c) for c in labels.classes]
    positive = cfg.data.positive_label
    pred = ZeroShot(cfg.model.name).predict(test.texts, names, positive=positive, batch_size=batch_size)
    m = classification_metrics(labels.encode(test.labels), pred, names,
                               positive_label=names.index(str(positive)) if positive in names else None)
    return {"model": cfg.model.name, "test": m}
