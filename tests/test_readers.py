"""Readers: formats, label types, and one clear error per kind of bad file."""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from lmclassify.data.readers import SUPPORTED, read_examples, read_texts, read_texts_from_stream
from lmclassify.errors import LmClassifyError

DATA = Path(os.environ.get("LMCLASSIFY_DATA") or Path(__file__).parents[1] / ".." / "shared" / "data")


def write(p: Path, text: str, encoding: str = "utf-8") -> Path:
    p.write_bytes(text.encode(encoding))
    return p


def one_line_error(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


# --- formats ---------------------------------------------------------------------------

def test_csv_int_labels_become_int_and_texts_are_kept_as_is(tmp_path):
    p = write(tmp_path / "d.csv", 'text,label\n"  hello, world ",1\nbye,0\n"line one\nline two",1\n')
    ex = read_examples(p)
    assert ex.texts == ["  hello, world ", "bye", "line one\nline two"]
    assert ex.labels == [1, 0, 1] and all(type(y) is int for y in ex.labels)
    assert ex.source == str(p)


def test_csv_string_labels_stay_strings_for_the_whole_column(tmp_path):
    p = write(tmp_path / "d.csv", "text,label\na,1\nb,spam\n")
    assert read_examples(p).labels == ["1", "spam"]  # not [1, "spam"]
    p = write(tmp_path / "e.csv", "text,label\na,01\nb,02\n")
    assert read_examples(p).labels == ["01", "02"]  # would not print back as written


def test_csv_text_with_unicode_line_separators_stays_one_row(tmp_path):
    text = "para one\u2028para two\x0cpage"
    p = write(tmp_path / "d.csv", f"text,label\n{text},a\nother,b\n")
    assert read_examples(p).texts == [text, "other"]


def test_custom_columns_and_bom(tmp_path):
    p = write(tmp_path / "d.csv", "\ufeffsentence,y\nhi,pos\n")
    ex = read_examples(p, text_column="sentence", label_column="y")
    assert ex.texts == ["hi"] and ex.labels == ["pos"]


@pytest.mark.parametrize("ext", [".tsv", ".tab"])
def test_tsv_reads_quotes_literally(tmp_path, ext):
    p = write(tmp_path / f"d{ext}", 'text\tlabel\nhe said "hi\t1\n"quoted"\t0\n')
    ex = read_examples(p)
    assert ex.texts == ['he said "hi', '"quoted"'] and ex.labels == [1, 0]


def test_jsonl_keeps_json_label_types_and_skips_blank_lines(tmp_path):
    rows = [{"text": "a", "label": 1}, {"text": "b", "label": 0}]
    p = write(tmp_path / "d.jsonl", "\n".join(json.dumps(r) for r in rows[:1]) + "\n\n  \n" + json.dumps(rows[1]))
    ex = read_examples(p)
    assert ex.texts == ["a", "b"] and ex.labels == [1, 0]
    p = write(tmp_path / "s.json", '{"text": "a", "label": "1"}\n{"text": "b\u2028c", "label": "0"}\n')
    ex = read_examples(p)
    assert ex.labels == ["1", "0"]  # JSON strings stay strings
    assert ex.texts == ["a", "b\u2028c"]


def test_txt_is_texts_only(tmp_path):
    p = write(tmp_path / "d.txt", "first\r\n\nsecond  \n")
    assert read_texts(p) == ["first", "second  "]
    ex = read_examples(p, require_labels=False)
    assert ex.texts == ["first", "second  "] and ex.labels is None
    with pytest.raises(LmClassifyError, match="has no labels") as e:
        read_examples(p)
    assert str(p) in one_line_error(e)


def test_read_texts_by_column_ignores_a_missing_label_column(tmp_path):
    p = write(tmp_path / "d.csv", "id,body\n1,x\n2,y\n")
    assert read_texts(p, text_column="body") == ["x", "y"]
    p = write(tmp_path / "d.jsonl", '{"text": "x"}\n{"text": "y", "label": "a"}\n')
    assert read_texts(p) == ["x", "y"]


def test_read_texts_from_stream_skips_empty_lines():
    assert read_texts_from_stream(io.StringIO("a b\n\n  \nc\r\nlast")) == ["a b", "c", "last"]


def test_read_texts_from_stream_reports_bad_bytes():
    stream = io.TextIOWrapper(io.BytesIO(b"ok\n\xff\xfe\n"), encoding="utf-8")
    with pytest.raises(LmClassifyError, match="not UTF-8"):
        read_texts_from_stream(stream)


# --- real files --------------------------------------------------------------------------

def test_real_glue_sst2_dev_tsv():
    p = DATA / "sst2" / "glue_dev.tsv"
    if not p.is_file():
        pytest.skip(f"{p} not found")
    ex = read_examples(p, text_column="sentence")
    assert len(ex) == len(p.read_text(encoding="utf-8").splitlines()) - 1 == 872
    assert set(ex.labels) == {0, 1}
    assert ex.texts[0] == "it 's a charming and often affecting journey . "  # trailing space kept


def test_real_ag_news_csv_with_a_header_added(tmp_path):
    src = DATA / "ag_news" / "test.csv"
    if not src.is_file():
        pytest.skip(f"{src} not found")
    p = write(tmp_path / "ag.csv", "label,title,text\n" + src.read_text(encoding="utf-8"))
    ex = read_examples(p)
    assert len(ex) == 7600
    assert {y: ex.labels.count(y) for y in set(ex.labels)} == {1: 1900, 2: 1900, 3: 1900, 4: 1900}


# --- errors ----------------------------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(LmClassifyError, match="no such file") as e:
        read_examples(tmp_path / "nope.csv")
    assert "nope.csv" in one_line_error(e)


def test_directory(tmp_path):
    d = tmp_path / "dir.csv"
    d.mkdir()
    with pytest.raises(LmClassifyError, match="is a directory"):
        read_examples(d)


def test_missing_column_lists_the_available_ones(tmp_path):
    p = write(tmp_path / "d.csv", "sentence,label\nhi,1\n")
    with pytest.raises(LmClassifyError) as e:
        read_examples(p)
    msg = one_line_error(e)
    assert "'text'" in msg and "'sentence'" in msg and "'label'" in msg and str(p) in msg
    with pytest.raises(LmClassifyError, match="no column 'y'"):
        read_examples(p, text_column="sentence", label_column="y")


@pytest.mark.parametrize("name,content", [("d.csv", ""), ("d.csv", "text,label\n"), ("d.tsv", "text\tlabel\n\n"),
                                          ("d.jsonl", "\n\n"), ("d.txt", "\n \n")])
def test_empty_data(tmp_path, name, content):
    p = write(tmp_path / name, content)
    with pytest.raises(LmClassifyError, match="no data rows|empty") as e:
        read_examples(p, require_labels=not name.endswith(".txt"))
    assert str(p) in one_line_error(e)


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_not_utf8_names_the_byte_offset_in_the_file(tmp_path, bom):
    raw = bom + "text,label\ncafé,1\n".encode("latin-1")
    p = tmp_path / "d.csv"
    p.write_bytes(raw)
    with pytest.raises(LmClassifyError) as e:
        read_examples(p)
    msg = one_line_error(e)
    assert "not UTF-8" in msg and f"offset {raw.index(0xE9)}" in msg and "line 2" in msg


def test_malformed_json_names_the_line(tmp_path):
    p = write(tmp_path / "d.jsonl", '{"text": "a", "label": 1}\n\n{"text": "b", label: 2}\n')
    with pytest.raises(LmClassifyError, match=r"line 3: not valid JSON") as e:
        read_examples(p)
    assert str(p) in one_line_error(e)


def test_json_array_file_gets_a_hint(tmp_path):
    p = write(tmp_path / "d.json", '[\n  {"text": "a", "label": 1}\n]\n')
    with pytest.raises(LmClassifyError, match="one JSON object per line"):
        read_examples(p)
    p = write(tmp_path / "e.json", '[{"text": "a", "label": 1}]\n')
    with pytest.raises(LmClassifyError, match="line 1: expected one JSON object per line, got list"):
        read_examples(p)


@pytest.mark.parametrize("name,content,line", [
    ("d.csv", "text,label\na,1\nb,\nc,0\n", 3),
    ("d.csv", "text,label\n\"multi\nline\",1\nb,  \n", 4),  # a quoted newline counts as a line
    ("d.csv", "text,label\na,1\nb\n", 3),  # a short row
    ("d.tsv", "text\tlabel\na\t1\nb\n", 3),
    ("d.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": null}\n', 2),
    ("d.jsonl", '{"text": "a", "label": 1}\n\n{"text": "b"}\n', 3),
])
def test_missing_label_names_the_line(tmp_path, name, content, line):
    p = write(tmp_path / name, content)
    with pytest.raises(LmClassifyError, match=f"line {line}: empty or missing label") as e:
        read_examples(p)
    assert str(p) in one_line_error(e)
    read_examples(p, require_labels=False)  # fine for prediction input


def test_missing_text_names_the_line(tmp_path):
    p = write(tmp_path / "d.jsonl", '{"text": "a", "label": 1}\n{"label": 0}\n')
    with pytest.raises(LmClassifyError, match="line 2: no value in column 'text'"):
        read_examples(p)


def test_json_label_of_the_wrong_type(tmp_path):
    p = write(tmp_path / "d.jsonl", '{"text": "a", "label": {"x": 1}}\n')
    with pytest.raises(LmClassifyError, match=r"line 1: label must be a string, a number or a list .*got \{"):
        read_examples(p)


def test_json_label_lists_and_floats_are_multi_label_and_regression_targets(tmp_path):
    p = write(tmp_path / "d.jsonl", '{"text": "a", "label": ["x", "y"]}\n{"text": "b", "label": 2.5}\n')
    assert read_examples(p).labels == [["x", "y"], 2.5]
    bad = write(tmp_path / "e.jsonl", '{"text": "a", "label": [1, [2]]}\n')
    with pytest.raises(LmClassifyError, match="line 1: label must be"):
        read_examples(bad)


def test_pair_column(tmp_path):
    p = write(tmp_path / "d.csv", "s1,s2,label\nA man eats.,Someone eats.,4.5\n")
    ex = read_examples(p, "s1", "label", pair_column="s2")
    assert ex.inputs() == [("A man eats.", "Someone eats.")] and ex.labels == ["4.5"]
    with pytest.raises(LmClassifyError, match="no column 'sentence2'"):
        read_examples(p, "s1", "label", pair_column="sentence2")


@pytest.mark.parametrize("name", ["d.xlsx", "data", "d.feather"])
def test_unknown_extension_names_the_supported_ones(tmp_path, name):
    p = write(tmp_path / name, "text,label\na,1\n")
    with pytest.raises(LmClassifyError, match="unsupported file type") as e:
        read_examples(p)
    msg = one_line_error(e)
    assert all(ext in msg for ext in SUPPORTED) and str(p) in msg


# --- Parquet ---------------------------------------------------------------------------

def write_parquet(p: Path, columns: dict) -> Path:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), p)
    return p


def test_parquet_is_supported():
    assert ".parquet" in SUPPORTED


def test_parquet_keeps_label_types_like_jsonl(tmp_path):
    p = write_parquet(tmp_path / "ints.parquet", {"text": ["a", "b"], "label": [1, 0], "other": [3.5, 4.5]})
    ex = read_examples(p)
    assert ex.texts == ["a", "b"] and ex.labels == [1, 0] and all(type(y) is int for y in ex.labels)
    assert ex.source == str(p)
    p = write_parquet(tmp_path / "strs.parquet", {"text": ["a", "b"], "label": ["1", " spam"]})
    assert read_examples(p).labels == ["1", " spam"]  # strings stay strings, as written
    p = write_parquet(tmp_path / "floats.parquet", {"text": ["a", "b"], "label": [2.5, 1.0]})
    labels = read_examples(p).labels
    assert labels == [2.5, 1.0] and all(type(y) is float for y in labels)  # regression targets
    p = write_parquet(tmp_path / "multi.parquet", {"text": ["a", "b"], "label": [["x", "y"], []]})
    assert read_examples(p).labels == [["x", "y"], []]
    p = write_parquet(tmp_path / "ids.parquet", {"text": ["a"], "label": [[3, 1]]})
    assert read_examples(p).labels == [[3, 1]]
    p = write_parquet(tmp_path / "bools.parquet", {"text": ["a", "b"], "label": [True, False]})
    assert read_examples(p).labels == ["true", "false"]  # as JSON booleans are read


def test_parquet_columns_pairs_and_texts(tmp_path):
    p = write_parquet(tmp_path / "d.parquet", {"id": [7, 8], "s1": ["A man eats.", "b\u2028c"],
                                                "s2": ["Someone eats.", "d"], "y": ["pos", "neg"]})
    ex = read_examples(p, "s1", "y", pair_column="s2")
    assert ex.inputs() == [("A man eats.", "Someone eats."), ("b\u2028c", "d")] and ex.labels == ["pos", "neg"]
    assert read_texts(p, text_column="s1") == ["A man eats.", "b\u2028c"]  # no label column needed
    assert read_texts(p, text_column="s1", pair_column="s2")[0] == ("A man eats.", "Someone eats.")
    assert read_texts(p, text_column="id") == ["7", "8"]  # a number as text, as in JSONL
    with pytest.raises(LmClassifyError) as e:
        read_examples(p)
    msg = one_line_error(e)
    assert "no column 'text'" in msg and "'s1'" in msg and "'id'" in msg and str(p) in msg


def test_parquet_binary_text_is_decoded(tmp_path):
    p = write_parquet(tmp_path / "d.parquet", {"text": [b"caf\xc3\xa9", b"\xff"], "label": [1, 0]})
    with pytest.raises(LmClassifyError, match=r"row 2: column 'text' holds bytes that are not UTF-8") as e:
        read_examples(p)
    assert str(p) in one_line_error(e)
    assert read_texts(write_parquet(tmp_path / "ok.parquet", {"text": [b"caf\xc3\xa9"]})) == ["café"]


@pytest.mark.parametrize("columns,match", [
    ({"text": ["a", None, "c"], "label": [1, 0, 1]}, "row 2: no value in column 'text'"),
    ({"text": ["a", "b", "c"], "label": [1, 0, None]}, "row 3: empty or missing label in column 'label'"),
    ({"text": ["a", "b"], "label": ["x", "  "]}, "row 2: empty or missing label in column 'label'"),
    ({"text": ["a", "b"], "label": [float("nan"), 1.5]}, "row 1: empty or missing label in column 'label'"),
    ({"text": ["a", "b"], "label": [["x"], ["y", None]]}, "row 2: label must be a string, a number or a list"),
    ({"text": ["a"], "label": [{"k": 1}]}, r"row 1: label must be .*got \{"),
])
def test_parquet_bad_rows_name_the_file_and_row(tmp_path, columns, match):
    p = write_parquet(tmp_path / "d.parquet", columns)
    with pytest.raises(LmClassifyError, match=match) as e:
        read_examples(p)
    assert one_line_error(e).startswith(f"{p}, row ")


def test_parquet_missing_label_is_fine_for_prediction_input(tmp_path):
    p = write_parquet(tmp_path / "d.parquet", {"text": ["a", "b"], "label": [1, None]})
    assert read_texts(p) == ["a", "b"]


@pytest.mark.parametrize("content", [b"text,label\na,1\n", b"", b"PAR1 not really"])
def test_a_file_that_is_not_parquet(tmp_path, content):
    pytest.importorskip("pyarrow")
    p = tmp_path / "d.parquet"
    p.write_bytes(content)
    with pytest.raises(LmClassifyError, match="is not a readable Parquet file") as e:
        read_examples(p)
    assert one_line_error(e).startswith(str(p))


def test_parquet_missing_file_directory_and_no_rows(tmp_path):
    with pytest.raises(LmClassifyError, match="no such file"):
        read_examples(tmp_path / "nope.parquet")
    (tmp_path / "dir.parquet").mkdir()
    with pytest.raises(LmClassifyError, match="is a directory"):
        read_examples(tmp_path / "dir.parquet")
    pa = pytest.importorskip("pyarrow")
    p = write_parquet(tmp_path / "empty.parquet", {"text": pa.array([], pa.string()), "label": pa.array([], pa.int64())})
    with pytest.raises(LmClassifyError, match="has no data rows") as e:
        read_examples(p)
    assert str(p) in one_line_error(e)


def test_pyarrow_is_needed_only_for_parquet(tmp_path, monkeypatch):
    p = write_parquet(tmp_path / "d.parquet", {"text": ["a"], "label": [1]})
    monkeypatch.setitem(__import__("sys").modules, "pyarrow", None)  # as if not installed
    monkeypatch.setitem(__import__("sys").modules, "pyarrow.parquet", None)
    assert read_examples(write(tmp_path / "d.csv", "text,label\na,1\n")).labels == [1]
    with pytest.raises(LmClassifyError, match="needs pyarrow") as e:
        read_examples(p)
    assert str(p) in one_line_error(e)
