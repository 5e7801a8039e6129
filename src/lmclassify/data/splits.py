"""Seeded balancing and splitting, so a run is reproducible from its config alone."""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Optional, Sequence, Union

import numpy as np

from ..errors import LmClassifyError
from .examples import Examples
from .numbers import float_written, number

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


def _class_codes(labels: Optional[Sequence], separator: Optional[str]) -> Optional[np.ndarray]:
    """One integer code per row when the labels are one class per row, else None.

    Not one class per row: no labels; a list or tuple label (multi-label); a string holding
    ``separator`` (multi-label written as "a,b"); a float; or labels that are all numbers with
    at least one written as a non-integer ("3.8", "1e-3": regression targets). This mirrors
    the task inference of training, so what trains as ``single`` is what gets stratified."""
    if not labels:
        return None
    if not all(isinstance(y, (int, str)) for y in labels):  # lists, tuples, floats, None
        return None
    if separator and any(isinstance(y, str) and separator in y for y in labels):
        return None
    if all(number(y) is not None for y in labels) and any(float_written(y) for y in labels):
        return None
    codes: dict = {}
    return np.array([codes.setdefault(y, len(codes)) for y in labels], dtype=np.int64)


def _can_stratify(y: np.ndarray, n_first: int, n_second: int) -> bool:
    """What scikit-learn's stratified cut needs: every class at least 2 rows, and at
    least as many rows on each side as there are classes."""
    counts = np.bincount(y)
    counts = counts[counts > 0]
    return counts.min() >= 2 and n_first >= len(counts) and n_second >= len(counts)


def _stratified_order(y: np.ndarray, n_train: int, n_val: int, n_test: int,
                      seed: int) -> Optional[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Carve test, then validation from the rest, each cut stratified by ``y``; None when
    either non-empty cut cannot be stratified."""
    from sklearn.model_selection import train_test_split

    if not n_test and not n_val:
        return None  # nothing to cut: the seeded shuffle is the whole job
    rs = np.random.RandomState(seed % 2**32)  # one stream for both cuts: deterministic for a seed
    empty = np.array([], dtype=np.int64)
    rest, test = np.arange(len(y)), empty
    if n_test:
        if not _can_stratify(y, n_train + n_val, n_test):
            return None
        rest, test = train_test_split(rest, train_size=n_train + n_val, test_size=n_test,
                                      stratify=y, random_state=rs)
    train, val = rest, empty
    if n_val:
        if not _can_stratify(y[rest], n_train, n_val):
            return None
        train, val = train_test_split(rest, train_size=n_train, test_size=n_val,
                                      stratify=y[rest], random_state=rs)
    return train, val, test


def split(ex: Examples, fractions: Union[str, Sequence[float]] = (0.7, 0.1, 0.2),
          seed: int = 123, stratify: bool = True,
          separator: Optional[str] = ",") -> tuple[Examples, Examples, Examples]:
    """Cut into int(n*f0) train, int(n*f1) validation and the rest test (1,494 rows give
    1,045 / 149 / 300, as in the book); a part whose fraction is 0 stays empty (with a test
    fraction of 0 the rounding remainder joins training). Validation or test may be empty;
    an empty training split is an error.

    With ``stratify`` (the default), every part keeps the class proportions of the whole
    (scikit-learn's ``train_test_split`` twice, seeded by ``seed``: test first, then
    validation from the rest) when all of these hold:

    * the labels are one class per row: every label is an int or a str; no str contains
      ``separator`` (multi-label written as "a,b"; pass the run's label separator, or None);
      and they are not all numbers with one written as a non-integer ("3.8": regression).
      Lists/tuples (multi-label), floats (regression) and unlabelled data are never stratified;
    * every class has at least 2 rows, both among all rows (for the test cut) and among the
      rows left after it (for the validation cut);
    * every non-empty part, and what remains beside it at each cut, has at least as many
      rows as there are classes.

    Otherwise (or with ``stratify=False``) it falls back, without an error, to a seeded
    random cut: shuffle with ``numpy.random.default_rng(seed)`` and cut in order.
    Either way every part comes out shuffled, in an order fixed by the seed."""
    f = parse_fractions(fractions)
    n = len(ex)
    n_val = int(n * f[1])
    n_train = int(n * f[0]) if f[2] > 0 else n - n_val
    n_test = n - n_train - n_val
    if n_train <= 0:
        raise LmClassifyError(f"{ex.source or 'data'}: the training split is empty "
                              f"({n} rows with split {','.join(f'{x:g}' for x in f)}); "
                              f"use more data or a larger training fraction")
    y = _class_codes(ex.labels, separator) if stratify else None
    parts = None if y is None else _stratified_order(y, n_train, n_val, n_test, seed)
    if parts is None:
        order = np.random.default_rng(seed).permutation(n)
        parts = order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]
    train, val, test = (ex.subset(np.asarray(p, dtype=np.int64).tolist()) for p in parts)
    return train, val, test
