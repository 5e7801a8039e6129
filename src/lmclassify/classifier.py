"""The scikit-learn-style estimator: ``fit(texts, labels) -> self``, ``predict``,
``predict_proba`` (columns follow ``classes_``), ``evaluate``, ``save``/``load``, for
every task shape (single-label, multi-label, regression; single texts or pairs).

Everything the CLI does goes through here, so the Python API and the command line
cannot drift apart.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from .config import ModelConfig, TrainConfig
from .data.batching import Encoded, encode
from .data.examples import split_inputs
from .errors import LmClassifyError
from .training.device import pick_device
from .training.feature_cache import build_features
from .training.loop import FitResult, fit, predict_logits
from .training.tasks import Task, make_task

PAIR_MODES = ("joint", "siamese")
# Decoder tokenizers have no pair format; a joint pair is one text, the two joined thus.
DECODER_PAIR_TEMPLATE = "{a}\n\n{b}"


class TextClassifier:
    """Fine-tune a pretrained LM into a text classifier, multi-label tagger or regressor.

    The task shape comes from the labels (class names, label lists, numbers; see
    ``training/tasks.py:infer_task``) unless ``ModelConfig.task`` names it; inputs are
    texts, or ``(text, text_pair)`` tuples for sentence-pair tasks.

    >>> clf = TextClassifier(model="smollm2-135m", epochs=1).fit(texts, labels)  # doctest: +SKIP
    >>> clf.predict(["WINNER! Claim your prize now"])                          # doctest: +SKIP
    ['spam']
    >>> sts = TextClassifier("minilm-l6").fit([("A man eats.", "Someone eats.")] * 8, [4.2] * 8)  # doctest: +SKIP
    """

    def __init__(self, model: str = "smollm2-135m", *, model_config: Optional[ModelConfig] = None,
                 train_config: Optional[TrainConfig] = None, positive_label=None, label_separator: str = ",",
                 progress: bool = True, **train):
        self.model = model
        self.model_config = model_config or ModelConfig(name=model)
        self.train_config = train_config or TrainConfig(**train)
        self.positive_label = positive_label
        self.label_separator = label_separator
        self.progress = progress

    # ---- fitting -----------------------------------------------------------------
    def fit(self, texts: Sequence, labels: Sequence, validation: Optional[tuple] = None,
            log=None) -> "TextClassifier":
        from .models.load import build_classifier

        mc, tc = self.model_config, self.train_config
        if mc.pair_mode not in PAIR_MODES:
            raise LmClassifyError(f"pair mode must be one of {', '.join(PAIR_MODES)}, not {mc.pair_mode!r}")
        self.task_: Task = make_task(mc.task, labels, separator=self.label_separator,
                                     class_weights=tc.class_weights, positive_label=self.positive_label)
        if validation is not None:
            self.task_.check_monitor(tc.monitor)
        self.labels_ = self.task_.labels
        self.classes_ = self.task_.classes
        self.pairs_ = split_inputs(texts)[1] is not None
        torch.manual_seed(tc.seed)
        np.random.seed(tc.seed)
        self.device_ = pick_device(tc.device)
        self.module_, self.tokenizer_, self.model_dir_ = build_classifier(
            mc.name, self.task_.id2label(), mc.train_layers, mc.pooling, mc.head_bias, seed=tc.seed,
            input_template=mc.input_template, head=mc.head, problem_type=self.task_.name,
            siamese=self.pairs_ and mc.pair_mode == "siamese")
        self.module_.to(self.device_)
        self.pair_template_ = None if self.module_.backbone.encoder else DECODER_PAIR_TEMPLATE
        trainable, total = self.module_.parameter_counts()
        self.parameter_counts_ = {"trainable": trainable, "total": total}
        if self.progress:
            print(f"task: {self.task_.kind}{' (text pairs, ' + mc.pair_mode + ')' if self.pairs_ else ''}; "
                  f"trainable parameters: {trainable:,} / {total:,} ({100 * trainable / total:.2f} %)")
        t0 = time.perf_counter()
        train_enc = self._encode(texts, labels)
        val_enc = self._encode(*validation) if validation is not None else None
        self.feature_cache_ = bool(tc.feature_cache and self.module_.cacheable)
        if self.feature_cache_:
            for name, enc in (("train", train_enc), ("validation", val_enc)):
                if enc is not None:
                    build_features(self.module_, enc, self.pad_id, self.device_, desc=f"cache {name}")
        self.fit_result_: FitResult = fit(self.module_, self.task_, train_enc, val_enc, tc, self.pad_id,
                                          self.device_, log=log)
        # Decision rules tuned on validation (multi-label thresholds); None for most tasks.
        self.calibration_ = None if val_enc is None else self.task_.calibrate(
            predict_logits(self.module_, val_enc, self.pad_id, self.device_, tc.eval_batch_size), val_enc.labels)
        self.train_seconds_ = time.perf_counter() - t0
        self._encoded = {"train": train_enc, "validation": val_enc}
        return self

    @property
    def pad_id(self) -> int:
        return self.tokenizer_.pad_token_id

    def _encode(self, texts: Sequence, labels: Optional[Sequence] = None) -> Encoded:
        firsts, pairs = split_inputs(texts)
        if (pairs is not None) != self.pairs_:
            raise LmClassifyError("this model classifies (text, text_pair) pairs; pass pairs (--text-pair-column)"
                                  if self.pairs_ else "this model classifies single texts, not text pairs")
        ids = None if labels is None else self.task_.encode_labels(labels)
        return encode(self.tokenizer_, firsts, ids, self.model_config.max_length, pairs=pairs,
                      pair_mode=self.model_config.pair_mode, pair_template=self.pair_template_)

    # ---- using -----------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "module_"):
            raise LmClassifyError("this classifier is not fitted yet: call fit() or TextClassifier.load(dir)")

    def logits(self, texts: Sequence, enc: Optional[Encoded] = None) -> torch.Tensor:
        self._check_fitted()
        enc = enc or self._encode(texts)
        return predict_logits(self.module_, enc, self.pad_id, self.device_, self.train_config.eval_batch_size)

    def predict_proba(self, texts: Sequence) -> np.ndarray:
        """(n_texts, n_classes) probabilities; columns follow ``classes_`` (softmax for one
        label per text, independent sigmoids for multi-label; regression has none)."""
        return self.task_.probabilities(self.logits(texts)).numpy()

    def predict(self, texts: Sequence) -> list:
        """Labels as written in training (a list of labels per text for multi-label, a
        number for regression)."""
        return self.task_.predict(self.logits(texts))

    def predict_records(self, texts: Sequence) -> list[dict]:
        """One JSON-ready dict per text: the text (and text_pair), then the task's answer:
        ``label``/``score``/``probabilities``, ``labels``/``probabilities`` or ``value``."""
        firsts, pairs = split_inputs(texts)
        heads = [{"text": t} for t in firsts] if pairs is None else \
            [{"text": a, "text_pair": b} for a, b in zip(firsts, pairs)]
        return [{**h, **r} for h, r in zip(heads, self.task_.records(self.logits(texts)))]

    def evaluate(self, texts: Sequence, labels: Sequence, split: Optional[str] = None) -> dict:
        """Metrics on labelled texts. Splits seen in ``fit`` reuse their cached features."""
        self._check_fitted()
        enc = self._encoded.get(split) if split and hasattr(self, "_encoded") else None
        if enc is None:
            enc = self._encode(texts, labels)
            if getattr(self, "feature_cache_", False):
                build_features(self.module_, enc, self.pad_id, self.device_, desc=f"cache {split or 'eval'}")
        return self.task_.metrics(self.logits(texts, enc), enc.labels)

    # ---- persistence -------------------------------------------------------------
    def save(self, directory: Path, **extra) -> Path:
        from .artifacts import save_model_dir

        self._check_fitted()
        if self._is_int8():
            raise LmClassifyError("an int8 model is for inference only; save the model before quantize()")
        return save_model_dir(Path(directory), self, **extra)

    @classmethod
    def load(cls, directory: Path, device: str = "auto", quantize: Optional[str] = None) -> "TextClassifier":
        """Load a saved model directory; ``quantize="int8"`` makes it an int8 model for CPU
        inference (see ``quantize``)."""
        from .artifacts import load_into

        clf = load_into(cls.__new__(cls), Path(directory), pick_device(device))
        if quantize:
            clf.quantize(quantize)
        return clf

    def quantize(self, kind: str = "int8") -> "TextClassifier":
        """int8 weights and per-token int8 activations in every Linear/Conv1D but the head
        (CPU inference; ``models/int8.py`` says why not torch's dynamic quantization).
        SmolLM2 on SMS spam: same labels as fp32 on 300/300 test texts (bench/speed.py)."""
        from .models.int8 import quantize_int8

        if kind != "int8":
            raise LmClassifyError(f"unknown quantization {kind!r}; only 'int8' is supported")
        if self.device_.type != "cpu":
            raise LmClassifyError("int8 quantization runs on the CPU only; use --device cpu")
        if not hasattr(torch, "_int_mm"):
            raise LmClassifyError(f"int8 needs torch._int_mm, which torch {torch.__version__} lacks")
        if self._is_int8():
            return self
        if not quantize_int8(self.module_, keep={id(m) for m in self.module_.head.modules()}):
            raise LmClassifyError(f"int8: this {self.module_.hf.config.model_type} model has no linear layers "
                                  f"to quantize")
        return self

    def _is_int8(self) -> bool:
        from .models.int8 import Int8Linear

        return any(isinstance(m, Int8Linear) for m in self.module_.modules())
