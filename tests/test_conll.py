"""CoNLL reading (separators, sentence breaks, -DOCSTART-, errors), the tag set, the
wnut17 recipe, and offsets for prediction."""
from __future__ import annotations

import pytest

from lmclassify.data.recipes import RECIPES, get_recipe
from lmclassify.tasks import TokenLabels
from lmclassify.data.conll import (joined_offsets, parse_conll,
                                   read_conll, split_words, tag_set)
from lmclassify.errors import LmClassifyError


def test_tabs_spaces_blank_lines_and_docstart():
    text = ("-DOCSTART- -X- O O\n\n"
            "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n \n"  # CoNLL-2003: tag in the last column
            "Empire\tB-location\r\nState\tI-location\r\n\t\n\n\n"  # CRLF; a lone tab breaks too
            "x\tO")  # no final newline
    s = parse_conll(text, "t.conll")
    assert s.tokens == [["EU", "rejects"], ["Empire", "State"], ["x"]]
    assert s.tags == [["B-ORG", "O"], ["B-location", "I-location"], ["O"]]
    assert s.lines == [[3, 4], [6, 7], [11]]


def test_tokens_keep_inner_characters():
    s = parse_conll("New York\tB-loc\n&gt;\tO\n", "t")  # a tab-separated token may hold a space
    assert s.tokens == [["New York", "&gt;"]]


def test_line_without_tag_names_file_and_line(tmp_path):
    p = tmp_path / "bad.conll"
    p.write_text("a\tO\nb\tO\n\nlonely\n")
    with pytest.raises(LmClassifyError) as e:
        read_conll(p)
    msg = str(e.value)
    assert "bad.conll" in msg and "line 4" in msg and "'lonely'" in msg and "\n" not in msg


def test_bad_tag_empty_file_missing_file(tmp_path):
    with pytest.raises(LmClassifyError, match=r"line 2: 'PER' is not an IOB tag"):
        parse_conll("a\tO\nb\tPER\n", "x")
    (tmp_path / "empty.conll").write_text("\n\n-DOCSTART-\tO\n")
    with pytest.raises(LmClassifyError, match="no sentences"):
        read_conll(tmp_path / "empty.conll")
    with pytest.raises(LmClassifyError, match="no such file"):
        read_conll(tmp_path / "nope.conll")
    (tmp_path / "latin1.conll").write_bytes("caf\xe9\tO\n".encode("latin-1"))
    with pytest.raises(LmClassifyError, match="not UTF-8"):
        read_conll(tmp_path / "latin1.conll")


def test_unlabelled_reading_for_prediction():
    s = parse_conll("a\nb\tO\n\nc\n", "x", labelled=False)
    assert s.tokens == [["a", "b"], ["c"]] and s.tags is None


def test_tag_set_order_and_unseen_tag_error():
    tags = [["B-person", "I-person", "O"], ["B-location"]]
    assert tag_set(tags) == ["O", "B-location", "B-person", "I-person"]
    task = TokenLabels.fit(tags)
    assert task.tags == tag_set(tags)
    test = parse_conll("a\tO\nb\tB-product\n\nc\tI-product\n", "test.conll")
    with pytest.raises(LmClassifyError) as e:
        task.encode_labels(test.labels, where=test.where)
    msg = str(e.value)
    assert "'B-product' (line 2)" in msg and "'I-product' (line 4)" in msg and "not seen in the training" in msg
    assert task.encode_labels(parse_conll("a\tB-person\nb\tO\n").labels) == [[2, 0]]


def test_offsets():
    assert split_words("  Big  Apple\tNYC ") == (["Big", "Apple", "NYC"], [(2, 5), (7, 12), (13, 16)])
    text, spans = joined_offsets(["New", "York", "!"])
    assert text == "New York !" and [text[a:b] for a, b in spans] == ["New", "York", "!"]


def test_wnut17_recipe_reads_the_published_files():
    r = get_recipe("wnut17")
    assert r.task == "token"
    try:
        train, dev, test = r.load_splits(123)
    except LmClassifyError as e:
        pytest.skip(str(e))
    assert (len(train), len(dev), len(test)) == (3394, 1009, 1287)
    assert tag_set(train.tags) == tag_set(test.tags) == ["O"] + [f"{p}-{t}" for t in (
        "corporation", "creative-work", "group", "location", "person", "product") for p in "BI"]
    with pytest.raises(LmClassifyError, match="unknown recipe 'nope'; known recipes: .*wnut17"):
        get_recipe("nope")
    assert "wnut17" in RECIPES


def test_recipe_without_data_says_where_to_put_it(monkeypatch, tmp_path):
    monkeypatch.setenv("LMCLASSIFY_DATA", str(tmp_path))
    with pytest.raises(LmClassifyError, match=r"wnut17 data not found: put wnut17train.conll.*LMCLASSIFY_DATA"):
        get_recipe("wnut17").load_splits(123)
