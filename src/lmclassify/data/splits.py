"""Seeded balancing and splitting, so a run is reproducible from its config alone."""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Sequence, Union

import numpy as np

from ..errors import LmClassifyError
from .examples import Examples

Fractions = tuple[float, float, float]


def parse_fractions(value: Union[str, Sequence[float]]) -> Fractions:
    """'0.7,0.1,0.2' (or a 3-sequence) -> (0.7, 0.1, 0.2): train, validation, test.

    Checked here so a bad --split fails before any model is loaded."""
    try:
        parts = tuple(float(x) for x in (value.split(",") if isinstance(value, str) else value))
    except (TypeError, ValueError):
        raise LmClassifyError(f"split must be three comma-separated fractions like 0.7,0.1,0.2, "
                              f"not {value!r}") from None
    if len(parts) != 3:
        raise LmClassifyError(f"split needs exactly three fractions (train, validation, test), "
                              f"got {len(parts)} in {value!r}")
    if not all(math.isfinite(p) and p >= 0 for p in parts):
        raise LmClassifyError(f"split fractions must be non-negative numbers, got {value!r}")
    total = sum(parts)
    if abs(total - 1) > 1e-6:
        hint = f" (percentages? try {','.join(f'{p / 100:g}' for p in parts)})" if abs(total - 100) < 1e-4 else ""
        raise LmClassifyError(f"split fractions must sum to 1, {value!r} sums to {total:g}{hint}")
    return parts  # type: ignore[return-value]


def undersample(ex: Examples, seed: int) -> Examples:
    """Sample every class down to the size of the smallest, so a majority class cannot win by
    default (the SMS recipe's 747 ham / 747 spam, as in Raschka's create_balanced_dataset).

    Deterministic for a seed: per-class samples, concatenated in class order, then shuffled."""
    if ex.labels is None:
        raise LmClassifyError(f"{ex.source or 'data'}: cannot balance unlabelled data")
    if any(isinstance(y, (list, tuple)) for y in ex.labels):
        raise LmClassifyError(f"{ex.source or 'data'}: --balance undersample needs one class per row, "
                              f"not several labels; use --class-weights auto for multi-label data")
    by_class: dict = defaultdict(list)
    for i, y in enumerate(ex.labels):
        by_class[y].append(i)
    if not by_class:
        raise LmClassifyError(f"{ex.source or 'data'}: no rows to balance")
    n = min(len(v) for v in by_class.values())
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    # Class order must not depend on which label came first in the file; str() orders mixed types.
    for y in sorted(by_class, key=lambda c: (isinstance(c, str), str(c) if isinstance(c, str) else c)):
        idx = by_class[y]
        keep += sorted(rng.choice(idx, size=n, replace=False).tolist()) if len(idx) > n else idx
    order = rng.permutation(len(keep))
    return ex.subset([keep[i] for i in order])


def split(ex: Examples, fractions: Union[str, Sequence[float]] = (0.7, 0.1, 0.2),
          seed: int = 123) -> tuple[Examples, Examples, Examples]:
    """Shuffle with the seed, then cut: int(n*f0) train, int(n*f1) validation, the rest test
    (1,494 rows give 1,045 / 149 / 300, as in the book). Validation or test may be empty."""
    f = parse_fractions(fractions)
    n = len(ex)
    order = np.random.default_rng(seed).permutation(n)
    n_train, n_val = int(n * f[0]), int(n * f[1])
    if n_train == 0:
        raise LmClassifyError(f"{ex.source or 'data'}: the training split is empty "
                              f"({n} rows with split {','.join(f'{x:g}' for x in f)}); "
                              f"use more data or a larger training fraction")
    parts = order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]
    train, val, test = (ex.subset(p.tolist()) for p in parts)
    return train, val, test
