"""Readers for labelled and unlabelled text: CSV, TSV, JSONL, TXT.

Every problem with the file is one LmClassifyError naming the file and the line.
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import IO, Optional

from ..errors import LmClassifyError
from .examples import Examples

SUPPORTED = (".csv", ".tsv", ".tab", ".jsonl", ".json", ".txt")
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def _read_text(path: Path) -> str:
    if not path.exists():
        raise LmClassifyError(f"{path}: no such file")
    if path.is_dir():
        raise LmClassifyError(f"{path} is a directory, not a data file")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise LmClassifyError(f"{path} is not UTF-8 text (undecodable byte at offset {e.start}); "
                              f"re-encode it as UTF-8") from None


def _label(value, path: Path, line: int):
    if value is None or (isinstance(value, str) and not value.strip()):
        raise LmClassifyError(f"{path}, line {line}: missing label")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return str(value)
    if isinstance(value, str):
        v = value.strip()
        return int(v) if v.lstrip("-").isdigit() else v
    return value


def _rows(path: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    """(column names, [(line number, row dict)]) for a table file."""
    suffix = path.suffix.lower()
    text = _read_text(path)
    if suffix in (".jsonl", ".json"):
        rows, cols = [], []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise LmClassifyError(f"{path}, line {n}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise LmClassifyError(f"{path}, line {n}: expected a JSON object per line")
            cols += [k for k in obj if k not in cols]
            rows.append((n, obj))
        return cols, rows
    if suffix in (".csv", ".tsv", ".tab"):
        kw = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if suffix != ".csv" else {}
        reader = csv.DictReader(text.splitlines(), **kw)
        cols = list(reader.fieldnames or [])
        return cols, [(n + 2, r) for n, r in enumerate(reader)]
    raise LmClassifyError(f"{path}: unsupported file type {suffix!r} (supported: {', '.join(SUPPORTED)})")


def _need(cols: list[str], col: str, path: Path) -> None:
    if col not in cols:
        raise LmClassifyError(f"{path}: no column {col!r} (columns: {', '.join(map(str, cols)) or 'none'})")


def read_examples(path, text_column: str = "text", label_column: str = "label",
                  require_labels: bool = True) -> Examples:
    """Labelled rows from CSV (header), TSV (header, no quoting), JSONL, or TXT (texts only)."""
    path = Path(path)
    if path.suffix.lower() == ".txt":
        if require_labels:
            raise LmClassifyError(f"{path}: a .txt file has no labels; use CSV, TSV or JSONL with a "
                                  f"{label_column!r} column")
        return Examples(read_texts(path), None, str(path))
    cols, rows = _rows(path)
    if not rows:
        raise LmClassifyError(f"{path} has no data rows")
    _need(cols, text_column, path)
    if require_labels:
        _need(cols, label_column, path)
    texts, labels = [], []
    for n, r in rows:
        t = r.get(text_column)
        texts.append("" if t is None else str(t))
        if require_labels:
            labels.append(_label(r.get(label_column), path, n))
    return Examples(texts, labels if require_labels else None, str(path))


def read_texts(path, text_column: str = "text") -> list[str]:
    """Texts to classify: a column of a table, or one text per line of a .txt file."""
    path = Path(path)
    if path.suffix.lower() == ".txt":
        return [line for line in _read_text(path).splitlines() if line.strip()]
    return read_examples(path, text_column, require_labels=False).texts


def read_texts_from_stream(stream: IO[str]) -> list[str]:
    try:
        return [line.rstrip("\r\n") for line in stream if line.strip()]
    except UnicodeDecodeError as e:
        raise LmClassifyError(f"standard input is not UTF-8 text (byte offset {e.start})") from None
