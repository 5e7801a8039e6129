"""Per-dimension z-scoring of embedding vectors with a corpus mean and standard deviation:
what ``embed --standardize`` fits and saves, and what the logistic head applies to its
features before the regression (and folds into the saved head)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ..errors import LmClassifyError, first_line

STATS_FORMAT = "lmclassify-embedding-stats"


@dataclass
class Standardizer:
    """Per-dimension z-scoring with a corpus mean and standard deviation (float64), fit on
    one set of vectors and applied to any other from the same model and pooling.

    >>> z = Standardizer().fit(train_vectors).transform(test_vectors)   # doctest: +SKIP
    """

    meta: dict = field(default_factory=dict)  # the model and pooling the stats belong to
    mean_: Optional[np.ndarray] = None  # (D,)
    std_: Optional[np.ndarray] = None  # (D,); a constant dimension keeps 1, so it maps to 0 instead of NaN
    n_: int = 0

    def fit(self, X: np.ndarray) -> "Standardizer":
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or len(X) < 2:
            raise LmClassifyError(f"standardising needs at least 2 vectors to fit on, not {len(X)}")
        self.mean_ = X.mean(0)
        std = X.std(0)
        self.std_ = np.where(std > 1e-12, std, 1.0)
        self.n_ = len(X)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """(N, D) float32 z-scores."""
        if self.mean_ is None:
            raise RuntimeError("Standardizer.transform before fit or load")
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != len(self.mean_):
            raise LmClassifyError(f"the stats are for {len(self.mean_)}-dimensional vectors, these have "
                                  f"{X.shape[-1] if X.ndim else 0}: use stats fit with the same model and pooling")
        return ((X.astype(np.float64) - self.mean_) / self.std_).astype(np.float32)

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        return self.fit(X).transform(X)

    def to_dict(self) -> dict:
        return {"format": STATS_FORMAT, "version": 1, **self.meta, "n": self.n_, "dim": len(self.mean_),
                "mean": self.mean_.tolist(), "std": self.std_.tolist()}

    def save(self, path: Union[str, Path]) -> Path:
        """JSON (float64 values written exactly, by ``repr``), via a temporary file and a rename."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            tmp.write_text(json.dumps(self.to_dict()) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: Union[str, Path]) -> "Standardizer":
        path = Path(path)
        if not path.is_file():
            raise LmClassifyError(f"{path}: no such stats file (write one with embed --standardize)")
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise LmClassifyError(f"{path} is not a stats file written by embed --standardize ({first_line(e)})") \
                from None
        if not isinstance(d, dict) or d.get("format") != STATS_FORMAT:
            raise LmClassifyError(f"{path} is not a stats file written by embed --standardize (no "
                                  f"'format': '{STATS_FORMAT}')")
        try:
            mean = np.asarray(d["mean"], dtype=np.float64)
            std = np.asarray(d["std"], dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            raise LmClassifyError(f"{path}: 'mean' and 'std' must be lists of numbers") from None
        if mean.ndim != 1 or mean.shape != std.shape or not len(mean) or not np.all(np.isfinite(mean)) \
                or not np.all(np.isfinite(std)) or np.any(std <= 0):
            raise LmClassifyError(f"{path}: 'mean' and 'std' must be equally long lists of finite numbers, "
                                  f"every std > 0")
        meta = {k: v for k, v in d.items() if k not in ("format", "version", "n", "dim", "mean", "std")}
        return cls(meta=meta, mean_=mean, std_=std, n_=int(d.get("n") or 0))
