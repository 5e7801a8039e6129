"""Seeded balancing and splitting, so a run is reproducible from its config."""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..errors import LmClassifyError
from .examples import Examples


def parse_fractions(text) -> tuple[float, float, float]:
    """'0.7,0.1,0.2' -> (0.7, 0.1, 0.2), checked."""
    try:
        parts = tuple(float(x) for x in (text.split(",") if isinstance(text, str) else text))
    except ValueError:
        raise LmClassifyError(f"--split must be three comma-separated fractions like 0.7,0.1,0.2, not {text!r}")
    if len(parts) != 3 or any(p < 0 for p in parts) or abs(sum(parts) - 1) > 1e-6:
        raise LmClassifyError(f"--split needs three non-negative fractions summing to 1, got {text!r}")
    return parts


def undersample(ex: Examples, seed: int) -> Examples:
    """Sample every class down to the size of the smallest (the recipe's 747 / 747)."""
    by_class = defaultdict(list)
    for i, y in enumerate(ex.labels):
        by_class[y].append(i)
    n = min(len(v) for v in by_class.values())
    rng = np.random.default_rng(seed)
    keep = []
    for y in sorted(by_class, key=str):
        idx = by_class[y]
        keep += sorted(rng.choice(idx, size=n, replace=False).tolist()) if len(idx) > n else idx
    keep = [keep[i] for i in rng.permutation(len(keep))]
    return ex.subset(keep)


def split(ex: Examples, fractions=(0.7, 0.1, 0.2), seed: int = 123) -> tuple[Examples, Examples, Examples]:
    """Shuffle with the seed, then cut: int(n*f0) train, int(n*f1) validation, rest test
    (1,494 rows give 1,045 / 149 / 300 as in the book)."""
    f = parse_fractions(fractions)
    order = np.random.default_rng(seed).permutation(len(ex))
    n_train, n_val = int(len(ex) * f[0]), int(len(ex) * f[1])
    parts = order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]
    if len(parts[0]) == 0:
        raise LmClassifyError(f"the training split is empty ({len(ex)} rows, split {f})")
    return tuple(ex.subset(p.tolist()) for p in parts)
