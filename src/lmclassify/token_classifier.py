"""Token classification (NER) as a scikit-learn-style estimator: ``fit(sentences, tags)``,
``predict`` (entity spans with character offsets), ``predict_tags``, ``evaluate``,
``save``/``load``. The CLI's ``train-tokens`` / ``predict-tokens`` / ``evaluate-tokens``
are thin shells over this class.

>>> ner = TokenClassifier("minilm-l6", epochs=3).fit([["Paris", "is", "big"]], [["B-loc", "O", "O"]])  # doctest: +SKIP
>>> ner.predict(["I love  Paris"])                                                    # doctest: +SKIP
[[{'label': 'loc', 'start': 8, 'end': 13, 'text': 'Paris', 'words': [2, 3], 'score': 0.91}]]
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from .classifier import pick_device
from .config import TrainConfig
from .data.conll import Sentences, encode_tags, joined_offsets, split_words, tag_set
from .errors import LmClassifyError
from .evaluation.entities import entity_metrics, entity_types, spans
from .training.feature_cache import build_features
from .training.loop import FitResult, fit
from .training.token_task import TokenTask, encode_words, tag_words

META = "lmclassify.json"
EXTRA = "lmclassify_extra.safetensors"
FORMAT = 1
TASK = "token_classification"
# Training defaults for token tasks where they differ from TrainConfig's (tuned on wnut17 dev
# with minilm-l6: the top two blocks from the feature cache, a higher rate than full tuning).
TOKEN_TRAIN_DEFAULTS = {"epochs": 3, "batch_size": 16, "learning_rate": 2e-4, "weight_decay": 0.01,
                        "schedule": "linear", "warmup_ratio": 0.1}


@dataclass
class TokenModelConfig:
    name: str = "minilm-l6"  # an encoder reads both ways, which tagging needs; decoders work too
    train_layers: Union[int, str] = 2  # N last blocks (+ final norm + head), "all" or "head"
    crf: bool = False  # a CRF over the word scores: learned transitions, Viterbi decoding
    max_length: Optional[int] = 128  # pieces per sentence; words past it are tagged O


class TokenClassifier:
    """Fine-tune a pretrained encoder (or decoder) into a per-word tagger."""

    def __init__(self, model: str = "minilm-l6", *, crf: bool = False, model_config: Optional[TokenModelConfig] = None,
                 train_config: Optional[TrainConfig] = None, progress: bool = True, **train):
        self.model = model
        self.model_config = model_config or TokenModelConfig(name=model, crf=crf)
        self.train_config = train_config or TrainConfig(**{**TOKEN_TRAIN_DEFAULTS, **train})
        self.progress = progress

    # ---- fitting -----------------------------------------------------------------
    def fit(self, tokens: Sequence[Sequence[str]], tags: Sequence[Sequence[str]],
            validation: Optional[tuple] = None, log=None) -> "TokenClassifier":
        """Train on sentences (lists of words) and their IOB tags; ``validation`` is a
        (tokens, tags) pair for early stopping and keeping the best weights."""
        from .models.token_classifier import build_token_model

        mc, tc = self.model_config, self.train_config
        train = _sentences(tokens, tags, "train")
        val = None if validation is None else (
            validation if isinstance(validation, Sentences) else _sentences(*validation, "validation"))
        self.tags_ = tag_set(train.tags)
        self.classes_ = list(self.tags_)
        torch.manual_seed(tc.seed)
        np.random.seed(tc.seed)
        self.device_ = pick_device(tc.device)
        self.module_, self.tokenizer_, _ = build_token_model(mc.name, self.tags_, mc.train_layers, mc.crf, tc.seed)
        self.task_ = TokenTask(self.tags_, self.module_.crf)
        trainable, total = self.module_.parameter_counts()
        self.parameter_counts_ = {"trainable": trainable, "total": total}
        if self.progress:
            print(f"trainable parameters: {trainable:,} / {total:,} ({100 * trainable / total:.2f} %)")
        t0 = time.perf_counter()
        self._encoded = {"train": self._encode(train, "train")}
        if val is not None:
            self._encoded["validation"] = self._encode(val, "validation")
        if self.module_.crf is not None:
            self.module_.crf.init_from_counts(encode_tags(train, self.label2id))
        self.module_.to(self.device_)
        self.feature_cache_ = bool(tc.feature_cache and self.module_.cacheable)
        if self.feature_cache_:
            for name, (enc, _, _) in self._encoded.items():
                build_features(self.module_, enc, self.pad_id, self.device_, desc=f"cache {name}")
        encs = [e for e, _, _ in self._encoded.values()]
        self.module_.pad_to = max(len(e.labels[0]) if len(e) else 0 for e in encs)
        try:
            self.fit_result_: FitResult = fit(self.module_, self.task_, encs[0], encs[1] if len(encs) > 1 else None,
                                              tc, self.pad_id, self.device_, log=log)
        finally:
            self.module_.pad_to = None
        self.train_seconds_ = time.perf_counter() - t0
        return self

    @property
    def label2id(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tags_)}

    @property
    def pad_id(self) -> int:
        return self.tokenizer_.pad_token_id

    def _encode(self, s: Sentences, split: str = "data") -> tuple:
        ids = encode_tags(s, self.label2id, split) if s.tags is not None else None
        enc, word_ids = encode_words(self.tokenizer_, s.tokens, ids, self.model_config.max_length)
        return enc, word_ids, s

    # ---- using -----------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "module_"):
            raise LmClassifyError("this token classifier is not fitted yet: call fit() or TokenClassifier.load(dir)")

    def _tag(self, enc, word_ids, s: Sentences) -> tuple[list, list, float]:
        ids, probs, loss = tag_words(self.module_, self.task_, enc, word_ids, [len(t) for t in s.tokens],
                                     self.pad_id, self.device_, self.train_config.eval_batch_size)
        return [[self.tags_[i] for i in row] for row in ids], probs, loss

    def predict_tags(self, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
        """One IOB tag per word of each pre-split sentence."""
        return [r["tags"] for r in self.annotate([list(s) for s in sentences])]

    def predict(self, texts: Sequence[Union[str, Sequence[str]]]) -> list[list[dict]]:
        """Entity spans per text. A string is split on whitespace and offsets point into it;
        a list of words is read as the words joined by single spaces."""
        return [r["entities"] for r in self.annotate(texts)]

    def annotate(self, texts: Sequence[Union[str, Sequence[str]]]) -> list[dict]:
        """Per text: ``{"text", "tokens", "tags", "entities"}`` (see ``predict``)."""
        self._check_fitted()
        if isinstance(texts, str):
            raise LmClassifyError("pass a list of texts (or of word lists), not a single string")
        rows = []
        for t in texts:
            words, offsets = split_words(t) if isinstance(t, str) else (list(t), joined_offsets(t)[1])
            rows.append((t if isinstance(t, str) else " ".join(t), words, offsets))
        todo = [i for i, r in enumerate(rows) if r[1]]  # a text with no words has no entities
        tags, probs = [[] for _ in rows], [[] for _ in rows]
        if todo:
            s = Sentences([rows[i][1] for i in todo])
            got_tags, got_probs, _ = self._tag(*self._encode(s))
            for k, i in enumerate(todo):
                tags[i], probs[i] = got_tags[k], got_probs[k]
        return [{"text": text, "tokens": words, "tags": tags[i], "entities": spans(tags[i], offsets, text, probs[i])}
                for i, (text, words, offsets) in enumerate(rows)]

    def evaluate(self, tokens: Sequence[Sequence[str]], tags: Sequence[Sequence[str]],
                 split: Optional[str] = None) -> dict:
        """Entity-level metrics over every word (words cut off by ``max_length`` count as
        tagged O). Splits seen in ``fit`` reuse their encoding and cached features."""
        self._check_fitted()
        got = getattr(self, "_encoded", {}).get(split) if split else None
        if got is None:
            got = self._encode(_sentences(tokens, tags, split or "evaluation"), split or "evaluation")
            if getattr(self, "feature_cache_", False):
                build_features(self.module_, got[0], self.pad_id, self.device_, desc=f"cache {split or 'eval'}")
        enc, word_ids, s = got
        pred, _, loss = self._tag(enc, word_ids, s)
        m = entity_metrics(s.tags, pred, loss=loss, types=entity_types(self.tags_))
        m["untagged_words"] = sum(len(t) - len({w for w in wid if w is not None})
                                  for t, wid in zip(s.tokens, word_ids))
        return m

    # ---- persistence -------------------------------------------------------------
    def compatibility_notes(self) -> list[str]:
        if self.module_.crf is None:
            return []
        return [f"the CRF transitions live in {EXTRA}, which plain transformers ignores: "
                "AutoModelForTokenClassification loads the encoder and per-token head and its argmax "
                "tags can differ from lmclassify's Viterbi path"]

    def save(self, directory: Union[str, Path], **extra_meta) -> Path:
        from safetensors.torch import save_file

        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.module_.hf.save_pretrained(directory, safe_serialization=True)
        if self.model_config.max_length:
            self.tokenizer_.model_max_length = self.model_config.max_length
        self.tokenizer_.save_pretrained(directory)
        if self.module_.crf is not None:
            save_file({f"crf.{k}": v.detach().cpu().contiguous() for k, v in self.module_.crf.state_dict().items()},
                      str(directory / EXTRA))
        notes = self.compatibility_notes()
        meta = {"format": FORMAT, "task": TASK, "labels": {"classes": list(self.tags_), "type": "str"},
                "crf": self.module_.crf is not None, "max_length": self.model_config.max_length,
                "base_model": self.model_config.name, "transformers_compatible": not notes, "notes": notes,
                **extra_meta}
        (directory / META).write_text(json.dumps(meta, indent=2, default=str) + "\n")
        cfg = directory / "training_config.json"
        if not cfg.exists():
            cfg.write_text(json.dumps({"model": dataclasses.asdict(self.model_config),
                                       "train": dataclasses.asdict(self.train_config)}, indent=2) + "\n")
        return directory

    @classmethod
    def load(cls, directory: Union[str, Path], device: str = "auto") -> "TokenClassifier":
        from safetensors.torch import load_file
        from transformers import AutoModelForTokenClassification

        from .models.token_classifier import TokenTagger, load_word_tokenizer

        directory = Path(directory)
        meta_path = directory / META
        if not meta_path.is_file():
            raise LmClassifyError(f"{directory} is not an lmclassify model directory (no {META})")
        meta = json.loads(meta_path.read_text())
        if meta.get("task") != TASK:
            raise LmClassifyError(f"{directory} holds a {meta.get('task', 'text-classification')} model, not a "
                                  f"token classifier; use 'lmclassify predict' for it")
        self = cls.__new__(cls)
        self.tags_ = list(meta["labels"]["classes"])
        self.classes_ = list(self.tags_)
        self.model = str(directory)
        self.model_config = TokenModelConfig(name=str(directory), train_layers="head", crf=bool(meta["crf"]),
                                             max_length=meta["max_length"])
        self.train_config = TrainConfig(**TOKEN_TRAIN_DEFAULTS)
        self.progress = False
        self.tokenizer_ = load_word_tokenizer(directory)
        hf = AutoModelForTokenClassification.from_pretrained(directory, dtype=torch.float32)
        module = TokenTagger(hf, "head", crf=bool(meta["crf"]))
        if module.crf is not None:
            state = load_file(str(directory / EXTRA))
            module.crf.load_state_dict({k.removeprefix("crf."): v for k, v in state.items()})
        self.device_ = pick_device(device)
        self.module_ = module.to(self.device_).eval()
        self.task_ = TokenTask(self.tags_, module.crf)
        self.feature_cache_ = False
        return self


def _sentences(tokens, tags, split: str) -> Sentences:
    if isinstance(tokens, Sentences):
        return tokens
    tokens, tags = [list(t) for t in tokens], [list(t) for t in tags]
    if len(tokens) != len(tags):
        raise LmClassifyError(f"{split}: {len(tokens)} sentences but {len(tags)} tag sequences")
    for i, (a, b) in enumerate(zip(tokens, tags)):
        if len(a) != len(b):
            raise LmClassifyError(f"{split}: sentence {i + 1} has {len(a)} words but {len(b)} tags")
    return Sentences(tokens, tags, split)
