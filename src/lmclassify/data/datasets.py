"""One entry point for labelled files of either kind: tables of texts (CSV, TSV, JSONL,
Parquet) or CoNLL token files, so the jobs need not know which reader to call."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from .conll import Sentences, read_conll
from .examples import Examples
from .readers import read_examples

CONLL_SUFFIXES = (".conll", ".conllu", ".iob", ".iob2", ".bio")


def is_conll(path: Union[str, Path]) -> bool:
    """A CoNLL token file, by its name (other names: say ``--task token``)."""
    return Path(path).suffix.lower() in CONLL_SUFFIXES


def read_dataset(path: Union[str, Path], tokens: bool, text_column: str = "text", label_column: str = "label",
                 pair_column: Optional[str] = None) -> Union[Examples, Sentences]:
    """Labelled data for a token task (CoNLL) or a text task (a table with columns)."""
    if tokens:
        return read_conll(path)
    return read_examples(path, text_column, label_column, pair_column=pair_column)
