"""Task shapes: inference from labels, class weights, multi-label thresholds, regression
scaling and metrics. Pure tensors, no model."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lmclassify.errors import LmClassifyError
from lmclassify.evaluation.metrics import headline, multilabel_metrics, regression_metrics
from lmclassify.tasks import MultiLabel, Regression, SingleLabel, infer_task, make_task, split_labels, task_from_saved


@pytest.mark.parametrize("labels,expect", [
    (["ham", "spam"], "single"),
    ([0, 1, 2], "single"),  # integer ids are classes
    (["1", "5", "3"], "single"),
    (["3.8", "5.000", "0"], "regression"),
    (["1.0", "3.0"], "regression"),  # written as floats
    (["nan", "inf"], "single"),  # float() reads these words, but nobody means them as targets
    ([0.5, 1.0], "regression"),
    ([["a", "b"], ["c"]], "multi"),
    (["a,b", "c"], "multi"),
    (["a", "c"], "single"),
])
def test_infer_task_like_problem_type(labels, expect):
    assert infer_task(labels) == expect


def test_infer_task_uses_the_separator():
    assert infer_task(["a|b", "c"], separator="|") == "multi"
    assert infer_task(["a,b", "c"], separator="|") == "single"


def test_class_weights_auto_is_balanced_and_explicit_is_checked():
    t = make_task("single", ["a"] * 6 + ["b"] * 2, class_weights="auto")
    assert torch.allclose(t.class_weights, torch.tensor([8 / (2 * 6), 8 / (2 * 2)]))
    t = make_task("single", ["a", "b", "b"], class_weights="1,3")
    assert t.class_weights.tolist() == [1.0, 3.0]
    with pytest.raises(LmClassifyError, match="has 3 weights but there are 2 classes"):
        make_task("single", ["a", "b"], class_weights="1,2,3")
    with pytest.raises(LmClassifyError, match="'auto' or comma-separated numbers"):
        make_task("single", ["a", "b"], class_weights="heavy")
    with pytest.raises(LmClassifyError, match="regression task has no classes"):
        make_task("regression", [0.5, 1.5], class_weights="auto")


def test_weighted_loss_counts_the_rare_class_more():
    logits, labels = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]]), torch.tensor([0, 1, 1])
    plain = make_task("single", ["a", "a", "a", "b"])
    weighted = make_task("single", ["a", "a", "a", "b"], class_weights="auto")
    expected = torch.tensor([4 / (2 * 3), 4 / (2 * 1)])  # n / (C * n_c): a 2/3, b 2
    want = torch.nn.functional.cross_entropy(logits, labels, weight=expected).item()
    assert weighted.loss(logits, labels).item() == pytest.approx(want, rel=1e-6)
    assert plain.loss(logits, labels).item() != pytest.approx(want, rel=1e-3)  # the weights matter here
    wrong_on_b = torch.tensor([[2.0, 0.0]]), torch.tensor([1])
    assert weighted.loss(*wrong_on_b) == pytest.approx(plain.loss(*wrong_on_b).item())  # one class: mean of one
    both = torch.tensor([[2.0, 0.0], [2.0, 0.0]]), torch.tensor([0, 1])
    assert weighted.loss(*both) > plain.loss(*both)  # the missed rare class weighs more


def test_multi_label_encoding_and_unknown_labels():
    t = make_task("auto", ["joy,love", "anger", ["joy"]])
    assert isinstance(t, MultiLabel) and t.classes == ["anger", "joy", "love"]
    assert t.encode_labels(["love, joy", ["anger"]]) == [[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]]
    with pytest.raises(LmClassifyError, match="'fear' not seen in the training data"):
        t.encode_labels(["fear"])
    assert split_labels("a;b", ";") == ["a", "b"] and split_labels(["x"], ",") == ["x"]


def test_multi_label_thresholds_are_tuned_per_label_and_saved():
    t = MultiLabel.fit([["a"], ["b"], ["a", "b"], ["c"]])
    # label a is well separated around p = 0.3, b around 0.8; c never occurs: keeps 0.5
    p = torch.tensor([[0.35, 0.1, 0.1], [0.2, 0.9, 0.1], [0.4, 0.85, 0.1], [0.1, 0.6, 0.1]])
    logits = torch.log(p / (1 - p))
    y = [[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]]
    assert t.metrics(logits, y)["f1_macro"] < 1
    tuned = t.calibrate(logits, y)
    assert 0.2 < tuned["thresholds"]["a"] <= 0.35 and 0.6 < tuned["thresholds"]["b"] <= 0.85
    assert tuned["thresholds"]["c"] == 0.5
    m = t.metrics(logits, y)
    assert m["f1_micro"] == 1.0 and m["accuracy"] == 1.0 and set(m) >= {"f1_macro", "per_class", "loss"}
    assert t.predict(logits) == [["a"], ["b"], ["a", "b"], []]
    again = task_from_saved(t.name, t.labels.to_dict(), t.state())
    assert again.predict(logits) == t.predict(logits)


def test_regression_standardises_targets_and_maps_back():
    t = make_task("auto", ["1.0", "3.0", "5.0"])
    assert isinstance(t, Regression) and t.mean == 3.0 and t.std == 2.0
    logits = torch.tensor([[-1.0], [0.0], [1.0]])
    assert t.predict(logits) == [1.0, 3.0, 5.0]
    assert t.loss(logits, torch.tensor([1.0, 3.0, 5.0])).item() == 0.0
    m = t.metrics(logits, [1.0, 3.0, 5.0])
    assert m["pearson"] == pytest.approx(1.0) and m["spearman"] == pytest.approx(1.0) and m["mse"] == 0.0
    assert task_from_saved("regression", None, t.state()).predict(logits) == [1.0, 3.0, 5.0]
    with pytest.raises(LmClassifyError, match="a regression model has no class probabilities"):
        t.probabilities(logits)


@pytest.mark.parametrize("bad", ["high", "", "nan"])
def test_regression_targets_must_be_numbers(bad):
    with pytest.raises(LmClassifyError, match=r"regression targets must be numbers; row 2 has"):
        make_task("regression", ["1.5", bad, "2"])


def test_metric_keys_and_monitor_directions():
    single = make_task("single", ["a", "b"])
    assert single.monitor_names() == ["val_loss", "val_accuracy", "val_f1_macro", "val_f1"]
    assert not single.higher_is_better("val_loss") and single.higher_is_better("val_f1")
    reg = make_task("regression", [0.5, 2.5])
    assert reg.higher_is_better("val_pearson") and not reg.higher_is_better("val_mse")
    assert reg.running_metric is None
    with pytest.raises(LmClassifyError, match="--monitor val_accuracy is not a metric of a regression task"):
        reg.check_monitor("val_accuracy")
    assert "val_f1_micro" in make_task("multi", [["a"], ["b"]]).monitor_names()


def test_metrics_functions():
    m = regression_metrics([1, 2, 3], [2, 2, 2])  # constant prediction: correlation undefined -> 0
    assert m["pearson"] == 0.0 and m["spearman"] == 0.0 and m["mse"] == pytest.approx(2 / 3)
    m = multilabel_metrics([[1, 0], [0, 1]], [[1, 0], [1, 1]], ["x", "y"])
    assert m["accuracy"] == 0.5 and m["per_class"]["y"]["recall"] == 1.0
    assert m["f1_micro"] == pytest.approx(2 * 2 / (2 * 2 + 1))
    assert headline({"accuracy": 0.5, "loss": 1.0, "n": 3}) == "accuracy 0.5000  loss 1.0000"


def test_single_label_keeps_its_constructor_and_positive_class():
    t = SingleLabel(["ham", "spam"], positive_label=1)
    logits = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert t.predict(logits) == ["spam", "ham"]
    m = t.metrics(logits, [1, 1])
    assert m["f1"] == pytest.approx(2 / 3) and m["positive_label"] == "spam"
    recs = t.records(logits)
    assert recs[0]["label"] == "spam" and set(recs[0]["probabilities"]) == {"ham", "spam"}
    assert np.isclose(sum(recs[0]["probabilities"].values()), 1)
