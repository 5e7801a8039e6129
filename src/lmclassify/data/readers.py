"""Readers for labelled and unlabelled text: CSV, TSV, JSONL, TXT, Parquet.

Every problem with a file is one LmClassifyError naming the file (and the line, or for
Parquet the row, where there is one), so a user can fix the data without reading a traceback.
"""
from __future__ import annotations

import csv
import io
import json
import re
import sys
from pathlib import Path
from typing import IO, Optional, Union

from ..errors import LmClassifyError
from .examples import Examples, Label

PathLike = Union[str, Path]
SUPPORTED = (".csv", ".tsv", ".tab", ".jsonl", ".json", ".txt", ".parquet")
_TABLE = (".csv", ".tsv", ".tab")
_JSON = (".jsonl", ".json")
_INT = re.compile(r"[+-]?[0-9]+")  # ASCII only: "²".isdigit() is True but int("²") fails
_BOM = b"\xef\xbb\xbf"

# Long documents are legitimate text; the csv module's default cap (128 KiB per field) is not.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def _check_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        what = f"extension {suffix!r}" if suffix else "no extension"
        raise LmClassifyError(f"{path}: unsupported file type ({what}); use one of {', '.join(SUPPORTED)}")
    return suffix


def _check_file(path: Path) -> None:
    if not path.exists():
        raise LmClassifyError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise LmClassifyError(f"{path} is a directory; pass a data file inside it")
    if not path.is_file():
        raise LmClassifyError(f"{path} is not a regular file; pass a data file")


def _read_text(path: Path) -> str:
    """The whole file as text: UTF-8, a leading BOM accepted and dropped."""
    _check_file(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise LmClassifyError(f"{path} cannot be read ({e.strerror or e})") from None
    return _decode(raw, str(path))


def _decode(raw: bytes, name: str) -> str:
    """UTF-8 text (a leading BOM dropped), or the error naming the offset and line."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        # utf-8-sig counts from after the BOM; report the offset in the file itself.
        offset = e.start + (len(_BOM) if raw.startswith(_BOM) else 0)
        line = raw.count(b"\n", 0, offset) + 1
        column = offset - (raw.rfind(b"\n", 0, offset) + 1) + 1
        raise LmClassifyError(f"{name} is not UTF-8 (undecodable byte at offset {offset}, line {line}, "
                              f"column {column}); re-encode it as UTF-8") from None


def _lines(text: str) -> list[str]:
    """Split on newlines only: str.splitlines() would also cut at U+2028, form feeds etc.
    that can sit inside a text."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start a new one
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def _json_rows(path: Path, text: str) -> tuple[list[str], list[tuple[int, dict]]]:
    cols: list[str] = []
    rows: list[tuple[int, dict]] = []
    for n, line in enumerate(_lines(text), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            hint = ("; the file must hold one JSON object per line (JSON Lines), not a JSON array"
                    if not rows and line.lstrip().startswith("[") else "")
            raise LmClassifyError(f"{path}, line {n}: not valid JSON ({e.msg}){hint}") from None
        if not isinstance(obj, dict):
            raise LmClassifyError(f"{path}, line {n}: expected one JSON object per line, "
                                  f"got {type(obj).__name__}")
        cols += [k for k in obj if k not in cols]
        rows.append((n, obj))
    return cols, rows


def _table_rows(path: Path, text: str, suffix: str, strict: bool = False) -> tuple[list[str], list[tuple[int, dict]]]:
    """The header and the rows of a CSV/TSV file. ``strict``: a row with more (non-empty)
    fields than the header is an error - in CSV, most often a text holding an unquoted
    comma, which would otherwise shift a piece of the text into the label."""
    # TSV is read with quoting off: a '"' in a text is a character, not a field delimiter.
    kw = {} if suffix == ".csv" else {"delimiter": "\t", "quoting": csv.QUOTE_NONE}
    reader = csv.reader(io.StringIO(text, newline=""), **kw)
    try:
        header = next(reader, [])
        rows: list[tuple[int, dict]] = []
        while True:
            start = reader.line_num + 1  # a quoted CSV field may span lines; report the first
            values = next(reader, None)
            if values is None:
                break
            if values:  # the csv module returns [] for a blank line
                if strict and len(values) > len(header) and any(v.strip() for v in values[len(header):]):
                    sep = "comma" if suffix == ".csv" else "tab"
                    hint = "; put a text that holds a comma in double quotes" if suffix == ".csv" else ""
                    raise LmClassifyError(f"{path}, line {start}: {len(values)} fields but the header has "
                                          f"{len(header)} ({', '.join(map(repr, header))}): an extra {sep}{hint}")
                rows.append((start, dict(zip(header, values))))
    except csv.Error as e:
        raise LmClassifyError(f"{path}, line {reader.line_num}: malformed {suffix[1:].upper()} ({e})") from None
    return header, rows


def _parquet_rows(path: Path, wanted: list[str]) -> tuple[list[str], list[tuple[int, dict]]]:
    """The columns of a Parquet file, and its rows numbered from 1 holding only the
    ``wanted`` columns that exist. pyarrow is imported here, so only Parquet needs it."""
    _check_file(path)
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise LmClassifyError(f"{path}: reading Parquet needs pyarrow; install it (pip install pyarrow)") from None
    try:
        with pq.ParquetFile(path) as pf:
            cols = list(pf.schema_arrow.names)
            table = pf.read(columns=[c for c in dict.fromkeys(wanted) if c in cols])
    except (pa.ArrowException, OSError, ValueError) as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise LmClassifyError(f"{path} is not a readable Parquet file ({reason})") from None
    return cols, list(enumerate(table.to_pylist(), 1))


def _need(cols: list[str], col: str, path: Path) -> None:
    if col not in cols:
        raise LmClassifyError(f"{path}: no column {col!r} (columns: {', '.join(map(repr, cols)) or 'none'}); "
                              f"pick one with the column option")


def _json_label(value: object, path: Path, where: str) -> Label:
    """A JSON (or Parquet) label as written; ``where`` is "line 3" (or "row 3")."""
    if isinstance(value, bool):  # bool is an int subclass; keep it readable
        return str(value).lower()
    if isinstance(value, (int, str, float)):  # a float is a regression target
        return value
    if isinstance(value, list) and all(isinstance(v, (int, str)) and not isinstance(v, bool) for v in value):
        return value  # several labels: multi-label
    raise LmClassifyError(f"{path}, {where}: label must be a string, a number or a list of "
                          f"strings/integers, got {json.dumps(value, default=str)}")


def _as_text(value: object, path: Path, where: str, col: str) -> str:
    """A text cell as a string: strings as they are, UTF-8 bytes (Parquet binary) decoded,
    anything else (a number, a list) as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise LmClassifyError(f"{path}, {where}: column {col!r} holds bytes that are not UTF-8 text") from None
    return json.dumps(value, default=str)


def _is_int_string(v: str) -> bool:
    # Only when the text round-trips: "01" stays a string, so the label prints as written.
    return bool(_INT.fullmatch(v)) and str(int(v)) == v.lstrip("+")


def read_examples(path: PathLike, text_column: str = "text", label_column: str = "label",
                  require_labels: bool = True, pair_column: Optional[str] = None) -> Examples:
    """Rows from CSV (header), TSV (header, no quoting), JSONL, Parquet, or TXT (texts only).

    Labels keep their source type: JSON and Parquet ints stay int, strings str, floats
    float (regression targets), lists of strings/integers several labels (multi-label);
    in CSV/TSV a label column whose values are all integers ("0", "1") becomes int,
    otherwise every label stays a string (the task turns "3.8" into a regression target
    or "a,b" into several labels). ``pair_column`` names a second text per row
    (sentence-pair data). Errors name the line (CSV/TSV/JSONL) or the row, counted from 1
    (Parquet); a null or NaN label in Parquet is a missing label.
    """
    path = Path(path)
    _check_file(path)  # a missing file or a folder, whatever its name, before its type
    suffix = _check_suffix(path)
    if suffix == ".parquet":
        wanted = [text_column] + [c for c in (pair_column, label_column if require_labels else None) if c]
        cols, rows = _parquet_rows(path, wanted)
    elif suffix == ".txt":
        text = _read_text(path)
        if pair_column:
            raise LmClassifyError(f"{path}: a .txt file has one text per line and no {pair_column!r} column; "
                                  f"use CSV, TSV, JSONL or Parquet for text pairs")
        if require_labels:
            raise LmClassifyError(f"{path}: a .txt file has no labels; use CSV, TSV, JSONL or Parquet "
                                  f"with a {label_column!r} column")
        texts = [ln for ln in _lines(text) if ln.strip()]
        if not texts:
            raise LmClassifyError(f"{path} is empty (no texts)")
        return Examples(texts, None, str(path))
    else:
        text = _read_text(path)
        if not text.strip():
            raise LmClassifyError(f"{path} is empty; expected {'JSON Lines' if suffix in _JSON else 'a header line'} "
                                  f"and data rows")
        cols, rows = _json_rows(path, text) if suffix in _JSON else _table_rows(path, text, suffix, strict=True)
    typed = suffix in _JSON or suffix == ".parquet"  # values carry their own types
    unit = "row" if suffix == ".parquet" else "line"
    if not rows:
        raise LmClassifyError(f"{path} has no data rows" + (f" (only the header {', '.join(map(repr, cols))})"
                                                            if suffix in _TABLE and cols else ""))
    _need(cols, text_column, path)
    if pair_column:
        _need(cols, pair_column, path)
    if require_labels:
        _need(cols, label_column, path)

    texts: list[str] = []
    pairs: list[str] = []
    labels: list[Label] = []
    for n, row in rows:
        for col, out in ((text_column, texts), (pair_column, pairs)):
            if col is None:
                continue
            t = row.get(col)
            if t is None:
                raise LmClassifyError(f"{path}, {unit} {n}: no value in column {col!r}")
            t = _as_text(t, path, f"{unit} {n}", col)
            if require_labels and not t.strip():  # nothing to learn from or score; prediction keeps it
                raise LmClassifyError(f"{path}, {unit} {n}: empty text in column {col!r}; give the row a text "
                                      f"or remove it")
            out.append(t)
        if not require_labels:
            continue
        y = row.get(label_column)
        if (y is None or (isinstance(y, str) and not y.strip())
                or (suffix == ".parquet" and isinstance(y, float) and y != y)):  # NaN: pandas' missing value
            raise LmClassifyError(f"{path}, {unit} {n}: empty or missing label in column {label_column!r}")
        labels.append(_json_label(y, path, f"{unit} {n}") if typed else y.strip())

    if require_labels and suffix in _TABLE and all(_is_int_string(y) for y in labels):
        labels = [int(y) for y in labels]
    return Examples(texts, labels if require_labels else None, str(path), pairs=pairs if pair_column else None)


def read_texts(path: PathLike, text_column: str = "text", pair_column: Optional[str] = None) -> list:
    """Texts to classify: a column of a CSV/TSV/JSONL/Parquet file, or one text per line of a .txt
    file (blank lines skipped). Labels, if present, are ignored. With ``pair_column``,
    (text, text_pair) tuples."""
    return read_examples(path, text_column, require_labels=False, pair_column=pair_column).inputs()


def read_texts_from_stream(stream: IO[str], name: str = "standard input", pairs: bool = False) -> list:
    """One text per line from a text stream (stdin), skipping empty lines; with ``pairs``,
    each line is ``text<TAB>text_pair``. Bytes that are not UTF-8 are an error naming the
    line (the stream's bytes are read where it has them, as stdin does)."""
    raw = getattr(stream, "buffer", None)
    if raw is not None:
        text = _decode(raw.read(), name)
        lines = [ln for ln in _lines(text) if ln.strip()]
    else:
        try:
            lines = [line.rstrip("\r\n") for line in stream if line.strip()]
        except UnicodeDecodeError as e:
            raise LmClassifyError(f"{name} is not UTF-8 (undecodable byte at offset {e.start}); "
                                  f"re-encode it as UTF-8") from None
    if not pairs:
        return lines
    out = []
    for n, line in enumerate(lines, 1):
        a, sep, b = line.partition("\t")
        if not sep:
            raise LmClassifyError(f"{name}, text {n}: this model classifies text pairs; "
                                  f"write each as 'text<TAB>text_pair'")
        out.append((a, b))
    return out


__all__ = ["SUPPORTED", "read_examples", "read_texts", "read_texts_from_stream"]
