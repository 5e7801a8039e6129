"""LabelMap: ordering, encoding, and a save/load that keeps 1 and "1" apart."""
from __future__ import annotations

import json

import pytest

from lmclassify.data.labels import LabelMap
from lmclassify.data.recipes import parse_sms
from lmclassify.errors import LmClassifyError


def test_ints_sort_numerically_strings_lexicographically():
    assert LabelMap.fit([10, 2, 1, 2]).classes == [1, 2, 10]
    assert LabelMap.fit(["spam", "ham", "Zebra", "spam"]).classes == ["Zebra", "ham", "spam"]


def test_mixed_int_and_str_become_strings():
    lm = LabelMap.fit([10, "b", 2, "10"])
    assert lm.classes == ["10", "2", "b"]
    assert lm.encode([10, "10", 2, "b"]) == [0, 0, 1, 2]


def test_encode_decode_round_trip():
    labels = ["spam", "ham", "ham", "spam", "eggs"]
    lm = LabelMap.fit(labels)
    ids = lm.encode(labels)
    assert ids == [2, 1, 1, 2, 0] and len(lm) == 3
    assert lm.decode(ids) == labels


def test_int_classes_accept_digit_strings_from_another_file():
    lm = LabelMap.fit([0, 1])
    assert lm.encode(["1", "0", 1]) == [1, 0, 1]
    assert lm.decode([1, 0]) == [1, 0] and all(type(y) is int for y in lm.decode([1, 0]))


def test_unseen_label_names_it_and_the_known_classes():
    lm = LabelMap.fit(["ham", "spam"])
    with pytest.raises(LmClassifyError) as e:
        lm.encode(["ham", "eggs", "bacon", "eggs"])
    msg = str(e.value)
    assert "'eggs'" in msg and "'bacon'" in msg and "'ham'" in msg and "'spam'" in msg and "\n" not in msg
    with pytest.raises(LmClassifyError, match="'x'"):
        LabelMap.fit([0, 1]).encode(["x"])


def test_unseen_list_is_capped():
    lm = LabelMap.fit(["a", "b"])
    with pytest.raises(LmClassifyError, match=r"\.\.\. \(30 in all\)"):
        lm.encode([f"u{i}" for i in range(30)])


def test_one_class_is_an_error():
    with pytest.raises(LmClassifyError, match="only one class 'x' in the training data; a classifier needs at least two"):
        LabelMap.fit(["x", "x"])
    with pytest.raises(LmClassifyError, match="no labels"):
        LabelMap.fit([])


def test_config_maps_are_string_keyed_inverses():
    lm = LabelMap.fit([3, 1, 2])
    assert lm.id2label() == {0: "1", 1: "2", 2: "3"}
    assert lm.label2id() == {"1": 0, "2": 1, "3": 2}
    assert {v: k for k, v in lm.id2label().items()} == lm.label2id()
    json.dumps({"id2label": lm.id2label(), "label2id": lm.label2id()})


@pytest.mark.parametrize("labels", [[1, 0], ["1", "0"], ["spam", "ham"], [-1, 5, 3]])
def test_to_dict_from_dict_survives_json_and_keeps_the_type(labels):
    lm = LabelMap.fit(labels)
    back = LabelMap.from_dict(json.loads(json.dumps(lm.to_dict())))
    assert back == lm
    assert [type(c) for c in back.classes] == [type(c) for c in lm.classes]
    assert back.decode(back.encode(labels)) == labels


def test_int_and_str_maps_differ_after_a_round_trip():
    as_int = LabelMap.from_dict(json.loads(json.dumps(LabelMap.fit([0, 1]).to_dict())))
    as_str = LabelMap.from_dict(json.loads(json.dumps(LabelMap.fit(["0", "1"]).to_dict())))
    assert as_int.classes == [0, 1] and as_str.classes == ["0", "1"] and as_int != as_str


def test_from_dict_rejects_a_corrupt_map():
    with pytest.raises(LmClassifyError, match="corrupt"):
        LabelMap.from_dict({"classes": ["ham", "spam"], "type": "int"})
    with pytest.raises(LmClassifyError, match="unknown label type"):
        LabelMap.from_dict({"classes": [0, 1], "type": "float"})


def test_real_sms_labels(sms_file):
    ex = parse_sms(sms_file.read_text(encoding="utf-8"))
    lm = LabelMap.fit(ex.labels)
    assert lm.classes == ["ham", "spam"]
    ids = lm.encode(ex.labels)
    assert sum(ids) == 747 and len(ids) - sum(ids) == 4827
