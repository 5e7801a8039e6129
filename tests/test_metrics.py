"""classification_metrics against hand-computed values, and the JSONL metrics log."""
from __future__ import annotations

import json

import numpy as np
import pytest

from lmclassify.evaluation.metrics import MetricsLog, classification_metrics, read_metrics_log

# 2 classes: TN=3, FP=1, FN=2, TP=4
Y2_TRUE = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
Y2_PRED = [0, 0, 0, 1, 1, 1, 1, 1, 0, 0]


def test_binary_by_hand():
    m = classification_metrics(Y2_TRUE, Y2_PRED, ["ham", "spam"], loss=0.25)
    assert m["loss"] == 0.25
    assert m["n"] == 10
    assert m["labels"] == ["ham", "spam"]
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["confusion_matrix"] == [[3, 1], [2, 4]]
    # ham: p = 3/5, r = 3/4, f1 = 2/3; spam: p = 4/5, r = 4/6, f1 = 8/11
    assert m["per_class"]["ham"] == pytest.approx({"precision": 0.6, "recall": 0.75, "f1": 2 / 3, "support": 4})
    assert m["per_class"]["spam"] == pytest.approx({"precision": 0.8, "recall": 2 / 3, "f1": 8 / 11, "support": 6})
    assert m["precision_macro"] == pytest.approx(0.7)
    assert m["recall_macro"] == pytest.approx((0.75 + 2 / 3) / 2)
    assert m["f1_macro"] == pytest.approx((2 / 3 + 8 / 11) / 2)
    # positive class defaults to id 1
    assert (m["precision"], m["recall"], m["f1"]) == pytest.approx((0.8, 2 / 3, 8 / 11))
    assert m["positive_label"] == "spam"


def test_binary_positive_label_zero():
    m = classification_metrics(Y2_TRUE, Y2_PRED, ["ham", "spam"], positive_label=0)
    assert (m["precision"], m["recall"], m["f1"]) == pytest.approx((0.6, 0.75, 2 / 3))
    assert m["positive_label"] == "ham"
    assert "loss" not in m


def test_three_classes_one_never_predicted():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 0, 1, 0, 1, 0]  # class "c" is never predicted
    m = classification_metrics(y_true, y_pred, ["a", "b", "c"])
    assert m["confusion_matrix"] == [[2, 0, 0], [1, 1, 0], [1, 1, 0]]
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["per_class"]["a"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 2})
    assert m["per_class"]["b"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    # zero_division=0: no predictions of c gives precision 0, not a warning or NaN
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert m["precision_macro"] == pytest.approx(1 / 3)
    assert m["recall_macro"] == pytest.approx(0.5)
    assert m["f1_macro"] == pytest.approx((2 / 3 + 0.5) / 3)
    assert not {"precision", "recall", "f1", "positive_label"} & m.keys()  # only for 2 classes


def test_class_absent_everywhere_still_in_matrix():
    m = classification_metrics([0, 1, 1], [0, 1, 0], ["a", "b", "c"])
    assert m["confusion_matrix"] == [[1, 0, 0], [1, 1, 0], [0, 0, 0]]
    assert m["per_class"]["c"]["support"] == 0
    assert list(m["per_class"]) == ["a", "b", "c"]


def test_json_safe_with_numpy_inputs():
    m = classification_metrics(np.array(Y2_TRUE), np.array(Y2_PRED), ["ham", "spam"], loss=np.float32(0.5))
    assert json.loads(json.dumps(m)) == m
    assert type(m["accuracy"]) is float and type(m["loss"]) is float
    assert type(m["n"]) is int and type(m["per_class"]["ham"]["support"]) is int
    assert all(type(v) is int for row in m["confusion_matrix"] for v in row)


@pytest.mark.parametrize("y_true, y_pred, kw", [
    ([0, 1], [0], {}),                       # length mismatch
    ([], [], {}),                            # nothing to evaluate
    ([0, 2], [0, 1], {}),                    # id with no name
    ([0, 1], [0, -1], {}),
    ([0, 1], [0, 1], {"positive_label": 2}),
])
def test_bad_input_raises(y_true, y_pred, kw):
    with pytest.raises(ValueError):
        classification_metrics(y_true, y_pred, ["a", "b"], **kw)


def test_metrics_log_round_trip_and_flush(tmp_path):
    path = tmp_path / "run" / "metrics.jsonl"
    log = MetricsLog(path)
    log.log({"step": 10, "epoch": 0.5, "examples_seen": 80, "train_loss": 0.7})
    # readable at once, while the log is still in use
    assert read_metrics_log(path) == [{"step": 10, "epoch": 0.5, "examples_seen": 80, "train_loss": 0.7}]
    log.log({"step": 20, "val_loss": np.float32(0.5), "val_accuracy": None})
    recs = read_metrics_log(path)
    assert recs[1] == {"step": 20, "val_loss": 0.5, "val_accuracy": None}
    assert path.read_text().count("\n") == 2


def test_metrics_log_starts_fresh_unless_append(tmp_path):
    path = tmp_path / "metrics.jsonl"
    MetricsLog(path).log({"step": 1})
    MetricsLog(path, append=True).log({"step": 2})
    assert [r["step"] for r in read_metrics_log(path)] == [1, 2]
    MetricsLog(path).log({"step": 3})
    assert read_metrics_log(path) == [{"step": 3}]


def test_read_log_drops_truncated_last_line_only(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n\n{"step": 2}\n{"step": 3, "val_lo')
    assert read_metrics_log(path) == [{"step": 1}, {"step": 2}]
    path.write_text('{"step": 1}\n{"step": \n{"step": 3}\n')
    with pytest.raises(json.JSONDecodeError):
        read_metrics_log(path)
