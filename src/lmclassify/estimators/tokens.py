"""``TokenClassifier``: one tag per word (NER and other IOB tagging), on encoders or
decoders, with an optional CRF. Follows the scikit-learn contract with word sequences as
``X`` and tag sequences as ``y``: ``predict`` returns tags per word, ``score`` entity F1.

>>> ner = TokenClassifier("minilm-l6", epochs=3).fit([["Paris", "is", "big"]], [["B-loc", "O", "O"]])  # doctest: +SKIP
>>> ner.predict_entities(["I love  Paris"])                                           # doctest: +SKIP
[[{'label': 'loc', 'start': 8, 'end': 13, 'text': 'Paris', 'words': [2, 3], 'score': 0.91}]]
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

from ..config import ModelConfig, TrainConfig
from ..data.batching import Encoded, encode_words
from ..data.conll import joined_offsets, split_words
from ..errors import LmClassifyError
from ..evaluation.entities import spans
from ..models.resolve import DEFAULT_ENCODER
from ..tasks import TOKEN, Task, TokenLabels
from .base import LMEstimator

Words = Union[str, Sequence[str]]


def _words(x: Words) -> list[str]:
    """A sentence as words: a list as given, a string split on whitespace."""
    return split_words(x)[0] if isinstance(x, str) else [str(w) for w in x]


class TokenClassifier(LMEstimator):
    """Fine-tune a pretrained encoder (or decoder) into a per-word tagger."""

    NETWORK = TOKEN
    DEFAULT_MODEL = DEFAULT_ENCODER

    def _make_task(self, y: Sequence, mc: ModelConfig, tc: TrainConfig) -> Task:
        return TokenLabels.fit([list(t) for t in y], class_weights=tc.class_weights)

    def _network_options(self, mc: ModelConfig) -> dict:
        return {"head": mc.head, "crf": mc.crf}

    def _init_network(self, y: Sequence) -> None:
        if self.module_.crf is not None:  # start the transitions from the training data's tag bigrams
            self.module_.crf.init_from_counts(self.task_.encode_labels(y))

    def _encode(self, X: Sequence[Words], y: Optional[Sequence] = None) -> Encoded:
        if isinstance(X, str):
            raise LmClassifyError("pass a list of sentences (texts or word lists), not a single string")
        words = [_words(x) for x in X]
        ids = None
        if y is not None:
            for i, (w, t) in enumerate(zip(words, y)):
                if len(w) != len(t):
                    raise LmClassifyError(f"sentence {i + 1} has {len(w)} words but {len(t)} tags")
            ids = self.task_.encode_labels(y)
        # windows: a sentence past max_length is tagged in overlapping windows, no word dropped
        return encode_words(self.tokenizer_, words, ids, self.model_config_.max_length, windows=True,
                            stride=self.model_config_.stride)

    def _evaluation_extras(self, enc: Encoded) -> dict:
        """Words cut off by max_length count as tagged O in the scores; say how many."""
        return {"untagged_words": sum(n - len({w for w in wid if w is not None})
                                      for n, wid in zip(enc.n_words, enc.word_ids))}

    def _calibration_inputs(self, texts: list[str]) -> list:
        return [_words(t) for t in texts]

    # ---- predictions ---------------------------------------------------------------
    def _tag(self, X: Sequence[Words]) -> tuple[list[list[str]], list[list[str]], list[list[float]]]:
        self._check_fitted()
        words = [_words(x) for x in X]
        todo = [i for i, w in enumerate(words) if w]  # a text with no words has no tags
        tags, probs = [[] for _ in words], [[] for _ in words]
        if todo:
            enc = self._encode([words[i] for i in todo])
            got_tags, got_probs = self.task_.word_tags(self._outputs(enc), enc.labels, enc.word_ids,
                                                       [len(words[i]) for i in todo])
            for k, i in enumerate(todo):
                tags[i], probs[i] = got_tags[k], got_probs[k]
        return words, tags, probs

    def predict(self, X: Sequence[Words]) -> list[list[str]]:
        """One IOB tag per word of each sentence (a word list, or a text split on whitespace)."""
        return self._tag(X)[1]

    def predict_records(self, X: Sequence[Words]) -> list[dict]:
        """Per sentence: ``{"text", "tokens", "tags", "entities"}``; entities are spans with
        character offsets into the text (a word list is read as the words joined by spaces)."""
        if isinstance(X, str):
            raise LmClassifyError("pass a list of texts (or of word lists), not a single string")
        words, tags, probs = self._tag(X)
        out = []
        for x, w, t, p in zip(X, words, tags, probs):
            text, offsets = (x, split_words(x)[1]) if isinstance(x, str) else joined_offsets(w)
            out.append({"text": text, "tokens": w, "tags": t, "entities": spans(t, offsets, text, p)})
        return out

    def predict_entities(self, X: Sequence[Words]) -> list[list[dict]]:
        """Entity spans per text, with character offsets (see ``predict_records``)."""
        return [r["entities"] for r in self.predict_records(X)]
