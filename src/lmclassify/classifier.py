"""The scikit-learn-style estimator: ``fit(texts, labels) -> self``, ``predict``,
``predict_proba`` (columns follow ``classes_``), ``evaluate``, ``save``/``load``.

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
from .data.labels import LabelMap
from .errors import LmClassifyError
from .training.feature_cache import build_features
from .training.loop import FitResult, fit, predict_logits
from .training.tasks import SingleLabel


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class TextClassifier:
    """Fine-tune a pretrained LM into a text classifier.

    >>> clf = TextClassifier(model="smollm2-135m", epochs=1).fit(texts, labels)  # doctest: +SKIP
    >>> clf.predict(["WINNER! Claim your prize now"])                          # doctest: +SKIP
    ['spam']
    """

    def __init__(self, model: str = "smollm2-135m", *, model_config: Optional[ModelConfig] = None,
                 train_config: Optional[TrainConfig] = None, positive_label=None, progress: bool = True, **train):
        self.model = model
        self.model_config = model_config or ModelConfig(name=model)
        self.train_config = train_config or TrainConfig(**train)
        self.positive_label = positive_label
        self.progress = progress

    # ---- fitting -----------------------------------------------------------------
    def fit(self, texts: Sequence[str], labels: Sequence, validation: Optional[tuple] = None,
            log=None) -> "TextClassifier":
        from .models.load import build_classifier

        mc, tc = self.model_config, self.train_config
        self.labels_ = LabelMap.fit(labels)
        self.classes_ = list(self.labels_.classes)
        torch.manual_seed(tc.seed)
        np.random.seed(tc.seed)
        self.device_ = pick_device(tc.device)
        self.module_, self.tokenizer_, self.model_dir_ = build_classifier(
            mc.name, self.labels_.id2label(), mc.train_layers, mc.pooling, mc.head_bias, seed=tc.seed,
            input_template=mc.input_template)
        self.module_.to(self.device_)
        self.task_ = SingleLabel(self.labels_.id2label().values(), positive_label=self._positive_id())
        trainable, total = self.module_.parameter_counts()
        self.parameter_counts_ = {"trainable": trainable, "total": total}
        if self.progress:
            print(f"trainable parameters: {trainable:,} / {total:,} ({100 * trainable / total:.2f} %)")
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
        self.train_seconds_ = time.perf_counter() - t0
        self._encoded = {"train": train_enc, "validation": val_enc}
        return self

    def _positive_id(self) -> Optional[int]:
        if self.positive_label is None or len(self.labels_) != 2:
            return None
        return self.labels_.encode([self.positive_label])[0]

    @property
    def pad_id(self) -> int:
        return self.tokenizer_.pad_token_id

    def _encode(self, texts: Sequence[str], labels: Optional[Sequence] = None) -> Encoded:
        ids = None if labels is None else self.labels_.encode(labels)
        return encode(self.tokenizer_, texts, ids, self.model_config.max_length)

    # ---- using -----------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "module_"):
            raise LmClassifyError("this classifier is not fitted yet: call fit() or TextClassifier.load(dir)")

    def logits(self, texts: Sequence[str], enc: Optional[Encoded] = None) -> torch.Tensor:
        self._check_fitted()
        enc = enc or self._encode(texts)
        return predict_logits(self.module_, enc, self.pad_id, self.device_, self.train_config.eval_batch_size)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """(n_texts, n_classes) probabilities; columns follow ``classes_``."""
        return self.task_.probabilities(self.logits(texts)).numpy()

    def predict(self, texts: Sequence[str]) -> list:
        return self.labels_.decode(self.task_.decode(self.logits(texts)))

    def evaluate(self, texts: Sequence[str], labels: Sequence, split: Optional[str] = None) -> dict:
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
        return save_model_dir(Path(directory), self, **extra)

    @classmethod
    def load(cls, directory: Path, device: str = "auto", quantize: Optional[str] = None) -> "TextClassifier":
        """Load a saved model directory; ``quantize="int8"`` swaps every Linear layer for a
        dynamically quantised int8 one (CPU inference only; see bench/speed.py for what it costs)."""
        from .artifacts import load_into

        clf = load_into(cls.__new__(cls), Path(directory), pick_device(device))
        if quantize:
            clf.quantize(quantize)
        return clf

    def quantize(self, kind: str = "int8") -> "TextClassifier":
        import warnings

        from torch.ao.quantization import quantize_dynamic

        if kind != "int8":
            raise LmClassifyError(f"unknown quantization {kind!r}; only 'int8' is supported")
        if self.device_.type != "cpu":
            raise LmClassifyError("int8 dynamic quantization runs on the CPU only; use --device cpu")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's deprecation notice for quantized tensors
            self.module_ = quantize_dynamic(self.module_, {torch.nn.Linear}, dtype=torch.qint8)
        return self
