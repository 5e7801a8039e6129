"""``--class-weights``: shared by every task that has classes."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from ..errors import LmClassifyError


def parse_class_weights(spec: Optional[str], counts: np.ndarray, classes: Sequence) -> Optional[torch.Tensor]:
    """None, ``auto`` (n / (C * n_c): every class carries the same total weight, scikit-learn's
    "balanced") or one comma-separated weight per class in class order. ``counts`` are the
    training examples per class."""
    if spec is None or spec == "none":
        return None
    C = len(classes)
    if spec == "auto":
        return torch.tensor(counts.sum() / (C * np.maximum(counts, 1)), dtype=torch.float32)
    try:
        w = [float(x) for x in str(spec).split(",")]
    except ValueError:
        raise LmClassifyError(f"--class-weights must be 'auto' or comma-separated numbers, not {spec!r}") from None
    if len(w) != C:
        raise LmClassifyError(f"--class-weights has {len(w)} weights but there are {C} classes "
                              f"({', '.join(map(str, classes))}), in that order")
    if any(not np.isfinite(x) or x < 0 for x in w) or not any(w):
        raise LmClassifyError(f"--class-weights must be non-negative numbers, not all zero: {spec!r}")
    return torch.tensor(w, dtype=torch.float32)
