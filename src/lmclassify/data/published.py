"""Readers for published benchmark sets in the formats they are distributed in (see
../shared/data/README.md), each returning pre-split (train, validation, test) Examples. Every reader takes the run's
seed, which only those that carve a split from another use.

None of these sets ships with lmclassify (several licences forbid it) and none is
downloaded: each is read from ``$LMCLASSIFY_DATA/<folder>``, and a missing file is one
error saying what to put where.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..errors import LmClassifyError
from ..paths import data_root
from .examples import Examples
from .conll import Sentences, read_conll
from .readers import _lines, _read_text, read_examples

Splits = tuple[Examples, Optional[Examples], Optional[Examples]]
SST2_NAMES = {"0": "negative", "1": "positive"}
MRPC_NAMES = {0: "not_equivalent", 1: "equivalent"}
RTE_NAMES = {0: "entailment", 1: "not_entailment"}
TREC_DEV_FRACTION = 0.1


def locate(folder: str, *files: str) -> list[Path]:
    """The files under $LMCLASSIFY_DATA/folder, or one error listing what is missing."""
    root = data_root()
    where = f"$LMCLASSIFY_DATA/{folder}/" if root is None else f"{root / folder}/"
    paths = [(root or Path(".")) / folder / f for f in files]
    missing = [p.name for p in paths if not p.is_file()] if root is not None else list(files)
    if missing:
        raise LmClassifyError(f"{folder} data not found: put {', '.join(missing)} in {where} "
                              f"(set LMCLASSIFY_DATA to the folder that holds {folder}/); "
                              f"lmclassify does not download this set")
    return paths


def _rename(ex: Examples, names: dict) -> Examples:
    ex.labels = [names.get(y, y) for y in ex.labels]
    return ex


def read_label_first(path: Path, names: Optional[dict] = None, encoding: str = "utf-8",
                     label_of: Callable[[str], str] = lambda x: x) -> Examples:
    """``label text`` per line, label first, separated by the first space (stsa, TREC)."""
    if encoding == "utf-8":
        text = _read_text(path)
    else:
        text = path.read_bytes().decode(encoding)
    texts, labels = [], []
    for n, line in enumerate(_lines(text), 1):
        if not line.strip():
            continue
        label, sep, body = line.partition(" ")
        if not sep:
            raise LmClassifyError(f"{path}, line {n}: expected 'label text'")
        label = label_of(label)
        texts.append(body.strip())
        labels.append((names or {}).get(label, label))
    return Examples(texts, labels, str(path))


def sst2(seed: int = 123) -> Splits:
    """Stanford Sentiment Treebank, binary, full sentences (stsa.binary.*): trains on the
    6,920 stsa train sentences (not GLUE's 67k phrases), scores dev 872 / test 1,821."""
    paths = locate("sst2", "stsa.binary.train", "stsa.binary.dev", "stsa.binary.test")
    return tuple(read_label_first(p, SST2_NAMES) for p in paths)  # type: ignore[return-value]


def trec(seed: int = 123) -> Splits:
    """TREC question type, the 6 coarse classes (ABBR, DESC, ENTY, HUM, LOC, NUM); the
    files are latin-1. TREC has no dev set: 10 % of train is carved off with ``seed``."""
    train_p, test_p = locate("trec", "TREC.train", "TREC.test")
    coarse = lambda x: x.split(":", 1)[0]  # noqa: E731  "DESC:manner" -> "DESC"
    full = read_label_first(train_p, encoding="latin-1", label_of=coarse)
    test = read_label_first(test_p, encoding="latin-1", label_of=coarse)
    order = np.random.default_rng(seed).permutation(len(full))
    n_dev = round(len(full) * TREC_DEV_FRACTION)
    return full.subset(order[n_dev:].tolist()), full.subset(order[:n_dev].tolist()), test


def mrpc(seed: int = 123) -> Splits:
    """MRPC paraphrase pairs: GLUE train 3,668 / dev 408; test = the original labelled
    msr_paraphrase_test.txt (1,725; GLUE's test.tsv has no labels)."""
    paths = locate("mrpc", "train.tsv", "dev.tsv", "msr_paraphrase_test.txt")
    out = []
    for p in paths:
        # .txt would mean "texts only" to read_examples; the MSR file is the same TSV.
        ex = _read_tsv(p, "#1 String", "Quality", "#2 String")
        out.append(_rename(ex, MRPC_NAMES))
    return tuple(out)  # type: ignore[return-value]


def rte(seed: int = 123) -> Splits:
    """RTE entailment pairs: train 2,490 / dev 277 (0 = entailment); the test set is unlabelled."""
    train_p, dev_p = locate("rte", "train.tsv", "dev.tsv")
    train, dev = (_rename(read_examples(p, "sentence1", "label", pair_column="sentence2"), RTE_NAMES)
                  for p in (train_p, dev_p))
    return train, dev, None


def stsb(seed: int = 123) -> Splits:
    """STS-B similarity 0-5: GLUE train 5,749 / dev 1,500; test scores from original/sts-test.tsv
    (1,379; no header, score in column 5, then the two sentences, then optional sources)."""
    train_p, dev_p, test_p = locate("stsb", "train.tsv", "dev.tsv", "original/sts-test.tsv")
    train, dev = (read_examples(p, "sentence1", "score", pair_column="sentence2") for p in (train_p, dev_p))
    texts, pairs, scores = [], [], []
    for n, line in enumerate(_lines(_read_text(test_p)), 1):
        cols = line.split("\t")
        if len(cols) < 7:
            raise LmClassifyError(f"{test_p}, line {n}: expected at least 7 tab-separated columns")
        scores.append(cols[4])
        texts.append(cols[5])
        pairs.append(cols[6])
    return train, dev, Examples(texts, scores, str(test_p), pairs=pairs)


def goemotions(seed: int = 123) -> Splits:
    """GoEmotions, 28 emotions, multi-label: ``text<TAB>ids<TAB>id`` per line, ids comma-
    separated indices into labels.txt; labels come back as lists of emotion names."""
    *paths, names_p = locate("goemotions", "train.tsv", "dev.tsv", "test.tsv", "labels.txt")
    names = [x.strip() for x in _lines(_read_text(names_p)) if x.strip()]
    out = []
    for p in paths:
        texts, labels = [], []
        for n, line in enumerate(_lines(_read_text(p)), 1):
            cols = line.split("\t")
            try:
                labels.append([names[int(i)] for i in cols[1].split(",")])
            except (IndexError, ValueError):
                raise LmClassifyError(f"{p}, line {n}: expected 'text<TAB>label ids<TAB>id' with ids "
                                      f"0..{len(names) - 1}") from None
            texts.append(cols[0])
        out.append(Examples(texts, labels, str(p)))
    return tuple(out)  # type: ignore[return-value]


def _read_tsv(path: Path, text: str, label: str, pair: str) -> Examples:
    """read_examples for a TSV whose name does not end in .tsv."""
    from .readers import _need, _table_rows

    cols, rows = _table_rows(path, _read_text(path), ".tsv")
    for c in (text, label, pair):
        _need(cols, c, path)
    try:
        labels = [int(r[label]) for _, r in rows]
    except (KeyError, ValueError):
        raise LmClassifyError(f"{path}: column {label!r} must hold 0 or 1 on every row") from None
    return Examples([r[text] for _, r in rows], labels, str(path), pairs=[r[pair] for _, r in rows])


def wnut17(seed: int = 123) -> tuple[Sentences, Sentences, Sentences]:
    """WNUT 2017 emerging entities (CoNLL, IOB2): train / dev / annotated test."""
    paths = locate("wnut17", "wnut17train.conll", "emerging.dev.conll", "emerging.test.annotated")
    return tuple(read_conll(p) for p in paths)  # type: ignore[return-value]
