"""``TextClassifier``: one output per text (or text pair): single-label, multi-label and
regression, on decoders or encoders.

>>> clf = TextClassifier("smollm2-135m", epochs=1).fit(texts, labels)        # doctest: +SKIP
>>> clf.predict(["WINNER! Claim your prize now"]), clf.classes_             # doctest: +SKIP
(['spam'], ['ham', 'spam'])
>>> sts = TextClassifier("minilm-l6").fit([("A man eats.", "Someone eats.")] * 8, [4.2] * 8)  # doctest: +SKIP
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..config import DataConfig, ModelConfig, TrainConfig
from ..data.batching import Encoded, encode
from ..data.examples import split_inputs
from ..errors import LmClassifyError
from ..tasks import SEQUENCE, Task, make_task
from .base import LMEstimator

# Decoder tokenizers have no pair format; a joint pair is one text, the two joined thus.
DECODER_PAIR_TEMPLATE = "{a}\n\n{b}"


class TextClassifier(LMEstimator):
    """Fine-tune a pretrained LM into a text classifier, multi-label tagger or regressor.

    The task shape comes from the labels (class names, label lists, numbers; see
    ``tasks/registry.py:infer_task``) unless ``task`` names it; inputs are texts, or
    ``(text, text_pair)`` tuples for sentence-pair tasks. Every parameter is an option
    of ``config.ModelConfig``/``TrainConfig``; None means "the model family's default".
    """

    NETWORK = SEQUENCE
    EXTRA_PARAMS = (("positive_label", None), ("label_separator", ","), ("progress", True))

    def data_config(self) -> DataConfig:
        return DataConfig(positive_label=self.positive_label, label_separator=self.label_separator)

    def set_data_config(self, data: DataConfig) -> "TextClassifier":
        self.positive_label, self.label_separator = data.positive_label, data.label_separator
        return self

    def __sklearn_tags__(self):
        """A classifier for scikit-learn (stratified cross-validation folds) unless the task is
        regression, or multi-label, whose label lists no stratified splitter reads. With
        task 'auto', pass task='regression' for regression targets."""
        from sklearn.utils import ClassifierTags, RegressorTags

        tags = super().__sklearn_tags__()
        kind = {"auto": "classifier", "single": "classifier", "regression": "regressor"}.get(self.task)
        tags.estimator_type = kind
        tags.classifier_tags = ClassifierTags() if kind == "classifier" else None
        tags.regressor_tags = RegressorTags() if kind == "regressor" else None
        return tags

    def _restored(self, meta: dict, data: DataConfig) -> None:
        self.set_data_config(data)
        self.pairs_ = bool(meta.get("pairs"))
        self.pair_template_ = meta.get("pair_template")

    def _make_task(self, y: Sequence, mc: ModelConfig, tc: TrainConfig) -> Task:
        if mc.task == "token":
            raise LmClassifyError("token labelling takes word sequences: use TokenClassifier")
        return make_task(mc.task, y, separator=self.label_separator, class_weights=tc.class_weights,
                         positive_label=self.positive_label)

    def _prepare(self, X: Sequence) -> None:
        self.pairs_ = split_inputs(X)[1] is not None

    def _network_options(self, mc: ModelConfig) -> dict:
        return {"pooling": mc.pooling, "head": mc.head, "head_bias": mc.head_bias, "input_template": mc.input_template,
                "siamese": self.pairs_ and mc.pair_mode == "siamese", "embedding_norm": mc.embedding_norm}

    def _built(self, mc: ModelConfig) -> None:
        mc.pooling = self.module_.pooler.kind
        self.pair_template_ = None if self.family_ == "encoder" else DECODER_PAIR_TEMPLATE

    def _describe(self) -> str:
        return self.task_.kind + (f" (text pairs, {self.model_config_.pair_mode})" if self.pairs_ else "")

    def _encode(self, X: Sequence, y: Optional[Sequence] = None) -> Encoded:
        firsts, pairs = split_inputs(X)
        if (pairs is not None) != self.pairs_:
            raise LmClassifyError("this model classifies (text, text_pair) pairs; pass pairs (--text-pair-column)"
                                  if self.pairs_ else "this model classifies single texts, not text pairs")
        ids = None if y is None else self.task_.encode_labels(y)
        mc = self.model_config_
        return encode(self.tokenizer_, firsts, ids, mc.max_length, pairs=pairs, pair_mode=mc.pair_mode,
                      pair_template=self.pair_template_, long_text=mc.long_text, stride=mc.stride,
                      aggregate=mc.chunk_aggregate)

    def _calibration_inputs(self, texts: list[str]) -> list:
        return list(zip(texts, texts[1:] + texts[:1])) if self.pairs_ else texts

    # ---- predictions ---------------------------------------------------------------
    def predict_proba(self, X: Sequence) -> np.ndarray:
        """(n_texts, n_classes) probabilities; columns follow ``classes_`` (softmax for one
        label per text, independent sigmoids for multi-label; regression has none)."""
        logits = self.decision_function(X)  # first: it says so when the estimator is not fitted
        return self.task_.probabilities(logits).numpy()

    def predict(self, X: Sequence) -> list:
        """Labels as written in training (a list of labels per text for multi-label, a
        number for regression)."""
        logits = self.decision_function(X)
        return self.task_.predict(logits)

    def predict_records(self, X: Sequence) -> list[dict]:
        """One JSON-ready dict per text: the text (and text_pair), then the task's answer:
        ``label``/``score``/``probabilities``, ``labels``/``probabilities`` or ``value``."""
        logits = self.decision_function(X)
        firsts, pairs = split_inputs(X)
        heads = [{"text": t} for t in firsts] if pairs is None else \
            [{"text": a, "text_pair": b} for a, b in zip(firsts, pairs)]
        return [{**h, **r} for h, r in zip(heads, self.task_.records(logits))]
