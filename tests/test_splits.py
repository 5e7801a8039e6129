"""Balancing and splitting: the book's counts, determinism, and bad fractions."""
from __future__ import annotations

from collections import Counter

import pytest

from lmclassify.data.examples import Examples
from lmclassify.data.recipes import parse_sms
from lmclassify.data.splits import parse_fractions, split, undersample
from lmclassify.errors import LmClassifyError


def make(n_a: int, n_b: int) -> Examples:
    texts = [f"a{i}" for i in range(n_a)] + [f"b{i}" for i in range(n_b)]
    return Examples(texts, [t[0] for t in texts], "synthetic")


def pairs(ex: Examples) -> list[tuple]:
    return list(zip(ex.texts, ex.labels))


# --- parse_fractions ---------------------------------------------------------------------

def test_parse_fractions():
    assert parse_fractions("0.7,0.1,0.2") == (0.7, 0.1, 0.2)
    assert parse_fractions(" 0.8, 0.2 ,0") == (0.8, 0.2, 0.0)
    assert parse_fractions([1, 0, 0]) == (1.0, 0.0, 0.0)


@pytest.mark.parametrize("bad,match", [
    ("0.7,0.3", "exactly three"), ("0.5,0.2,0.2,0.1", "exactly three"), ("a,b,c", "comma-separated"),
    ("", "comma-separated"), ("0.5,0.5,0.5", "sum to 1"), ("-0.1,0.6,0.5", "non-negative"),
    ("nan,0.5,0.5", "non-negative"), ("inf,0,0", "non-negative"), (0.7, "comma-separated"),
])
def test_parse_fractions_rejects(bad, match):
    with pytest.raises(LmClassifyError, match=match):
        parse_fractions(bad)


def test_parse_fractions_hints_at_percentages():
    with pytest.raises(LmClassifyError, match="percentages.*0.7,0.1,0.2"):
        parse_fractions("70,10,20")


# --- split -------------------------------------------------------------------------------

def test_split_counts_as_in_the_book_and_partitions_the_rows():
    ex = make(747, 747)
    train, val, test = split(ex, (0.7, 0.1, 0.2), seed=123)
    assert (len(train), len(val), len(test)) == (1045, 149, 300)
    all_rows = pairs(train) + pairs(val) + pairs(test)
    assert sorted(all_rows) == sorted(pairs(ex))  # disjoint, complete, texts still with their labels
    assert pairs(train) != pairs(ex)[:1045]  # shuffled, not a head cut


def test_split_is_seeded():
    ex = make(60, 40)
    a, b, c = split(ex, "0.6,0.2,0.2", seed=7), split(ex, "0.6,0.2,0.2", seed=7), split(ex, "0.6,0.2,0.2", seed=8)
    assert [s.texts for s in a] == [s.texts for s in b]
    assert [s.texts for s in a] != [s.texts for s in c]


def test_split_may_leave_validation_and_test_empty():
    train, val, test = split(make(3, 2), (1, 0, 0), seed=0)
    assert len(train) == 5 and len(val) == len(test) == 0


def test_split_unlabelled():
    ex = Examples(["x", "y", "z", "w"], None, "texts")
    train, val, test = split(ex, (0.5, 0.25, 0.25), seed=1)
    assert sorted(train.texts + val.texts + test.texts) == sorted(ex.texts) and train.labels is None


def test_empty_train_split_is_an_error():
    with pytest.raises(LmClassifyError, match="synthetic: the training split is empty"):
        split(make(1, 1), (0.3, 0.3, 0.4), seed=0)
    with pytest.raises(LmClassifyError, match="sum to 1"):
        split(make(5, 5), (0.5, 0.5, 0.5))


def counts_within_one_row(ex: Examples, part: Examples) -> bool:
    whole = Counter(ex.labels)
    got = Counter(part.labels)
    return all(abs(got[y] - k * len(part) / len(ex)) <= 1 for y, k in whole.items())


def random_cut(ex: Examples, fractions, seed: int) -> list[list[str]]:
    """The fall-back: the seeded shuffle-and-cut, as split() did before stratifying."""
    train, val, test = split(ex, fractions, seed, stratify=False)
    return [train.texts, val.texts, test.texts]


@pytest.mark.parametrize("fractions", [(0.7, 0.1, 0.2), (0.8, 0.1, 0.1), (0.6, 0.2, 0.2), (0.8, 0, 0.2),
                                       (0.7, 0.3, 0)])
@pytest.mark.parametrize("n_a,n_b", [(900, 100), (1345, 149), (95, 5), (181, 20)])
def test_split_keeps_class_proportions_in_every_part(fractions, n_a, n_b):
    ex = make(n_a, n_b)
    n = n_a + n_b
    for seed in range(5):
        parts = split(ex, fractions, seed)
        n_val = int(n * fractions[1])
        n_train = int(n * fractions[0]) if fractions[2] else n - n_val
        assert [len(p) for p in parts] == [n_train, n_val, n - n_train - n_val]
        assert all(counts_within_one_row(ex, p) for p in parts), [Counter(p.labels) for p in parts]
        assert sorted(sum((pairs(p) for p in parts), [])) == sorted(pairs(ex))


def test_split_stratified_sizes_as_in_the_book_and_differs_from_the_random_cut():
    ex = make(1345, 149)  # 1,494 rows, 90/10
    train, val, test = split(ex, (0.7, 0.1, 0.2), seed=123)
    assert (len(train), len(val), len(test)) == (1045, 149, 300)
    assert Counter(test.labels) == {"a": 270, "b": 30} and Counter(val.labels) == {"a": 134, "b": 15}
    assert [train.texts, val.texts, test.texts] != random_cut(ex, (0.7, 0.1, 0.2), 123)


def test_split_stratified_is_seeded():
    ex = make(90, 10)
    a, b = split(ex, (0.7, 0.1, 0.2), seed=7), split(ex, (0.7, 0.1, 0.2), seed=7)
    assert [s.texts for s in a] == [s.texts for s in b]
    for other in (8, 9, 2**40):  # a seed past 2**32 is fine too
        assert [s.texts for s in a] != [s.texts for s in split(ex, (0.7, 0.1, 0.2), seed=other)]
    assert a[0].labels != sorted(a[0].labels)  # shuffled, not grouped by class


def test_split_stratifies_int_and_mixed_labels():
    labels = [0] * 80 + [1] * 20 + ["1"] * 20  # 1 and "1" are different classes
    ex = Examples([f"t{i}" for i in range(len(labels))], labels, "ints")
    train, val, test = split(ex, (0.5, 0.25, 0.25), seed=3)
    assert Counter(test.labels) == {0: 20, 1: 5, "1": 5} and Counter(val.labels) == Counter(test.labels)


@pytest.mark.parametrize("labels", [
    [["x"], ["y"], ["x", "y"], ["y"]] * 10,   # multi-label lists
    ["x,y", "x", "y", "x"] * 10,               # multi-label written with the separator
    [0.5, 1.5, 2.0, 3.25] * 10,                # floats: regression targets
    ["3.8", "1", "2.5", "4"] * 10,             # numbers written as floats: regression
    ["a"] * 30 + ["b"] * 9 + ["c"],            # a class with a single row
    [f"c{i}" for i in range(10)] * 2,          # 10 classes, but only 2 validation rows
])
def test_split_falls_back_to_the_random_cut(labels):
    ex = Examples([f"t{i}" for i in range(len(labels))], labels, "odd")
    for seed in (0, 1):
        parts = split(ex, (0.7, 0.1, 0.2), seed)
        assert [p.texts for p in parts] == random_cut(ex, (0.7, 0.1, 0.2), seed)
        assert [len(p) for p in parts] == [int(len(ex) * 0.7), int(len(ex) * 0.1),
                                           len(ex) - int(len(ex) * 0.7) - int(len(ex) * 0.1)]


def test_split_separator_can_be_changed_or_switched_off():
    labels = ["x,y"] * 20 + ["z"] * 20  # two class names that happen to hold a comma
    ex = Examples([f"t{i}" for i in range(40)], labels, "names")
    for sep in ("|", None):
        assert Counter(split(ex, (0.5, 0.25, 0.25), 0, separator=sep)[2].labels) == {"x,y": 5, "z": 5}


def test_split_random_cut_is_the_old_shuffle_and_cut():
    import numpy as np

    ex = make(60, 40)
    order = np.random.default_rng(5).permutation(100).tolist()
    expected = [[ex.texts[i] for i in order[a:b]] for a, b in ((0, 60), (60, 80), (80, 100))]
    assert random_cut(ex, (0.6, 0.2, 0.2), 5) == expected


def test_split_zero_fraction_parts_stay_empty():
    ex = make(8, 3)  # 11 rows: int(7.7) + int(3.3) leaves one row over
    for stratify in (True, False):
        train, val, test = split(ex, (0.7, 0.3, 0), seed=0, stratify=stratify)
        assert (len(train), len(val), len(test)) == (8, 3, 0)
        train, val, test = split(ex, (0.8, 0, 0.2), seed=0, stratify=stratify)
        assert (len(train), len(val), len(test)) == (8, 0, 3)


# --- undersample -------------------------------------------------------------------------

def test_undersample_balances_to_the_smallest_class():
    ex = make(100, 13)
    bal = undersample(ex, seed=123)
    assert Counter(bal.labels) == {"a": 13, "b": 13}
    assert set(pairs(bal)) <= set(pairs(ex)) and len(set(bal.texts)) == 26
    assert {t for t in bal.texts if t[0] == "b"} == {f"b{i}" for i in range(13)}  # minority kept whole


def test_undersample_is_seeded_and_shuffled():
    ex = make(100, 13)
    assert undersample(ex, 1).texts == undersample(ex, 1).texts
    assert set(undersample(ex, 1).texts) != set(undersample(ex, 2).texts)  # a different sample
    labels = undersample(ex, 5).labels
    assert labels != sorted(labels)  # shuffled after concatenation, not 13 a's then 13 b's


def test_undersample_mixed_label_types():
    ex = Examples(["x", "y", "z", "w", "v"], [1, "1", 2, 2, 2], "mixed")
    assert Counter(undersample(ex, 0).labels) == {1: 1, "1": 1, 2: 1}


def test_undersample_needs_labels():
    with pytest.raises(LmClassifyError, match="unlabelled"):
        undersample(Examples(["a"], None, "x"), 0)


# --- the book's pipeline on the real file ----------------------------------------------------

def test_real_sms_balance_then_split(sms_file):
    ex = parse_sms(sms_file.read_text(encoding="utf-8"), str(sms_file))
    bal = undersample(ex, seed=123)
    assert Counter(bal.labels) == {"ham": 747, "spam": 747}
    assert {t for t, y in pairs(ex) if y == "spam"} == {t for t, y in pairs(bal) if y == "spam"}
    first = split(bal, (0.7, 0.1, 0.2), seed=123)
    again = split(undersample(ex, seed=123), (0.7, 0.1, 0.2), seed=123)
    other = split(undersample(ex, seed=124), (0.7, 0.1, 0.2), seed=124)
    assert [len(s) for s in first] == [1045, 149, 300]
    assert [pairs(s) for s in first] == [pairs(s) for s in again]
    assert [s.texts for s in first] != [s.texts for s in other]
    assert [len(s) for s in other] == [1045, 149, 300]
