"""Plots write real PNGs, tolerate gaps in the records and leave no figures open."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from lmclassify.evaluation.plots import plot_confusion_matrix, plot_training_curves

PNG = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 1000


def records():
    return [
        {"step": 65, "epoch": 0.5, "examples_seen": 520, "train_loss": 0.69, "train_accuracy": 0.55,
         "val_loss": 0.60, "val_accuracy": 0.70},
        {"step": 130, "epoch": 1.0, "examples_seen": 1040, "train_loss": 0.41, "train_accuracy": 0.85},
        {"step": 195, "epoch": 1.5, "examples_seen": 1560, "train_loss": None, "val_loss": 0.38,
         "val_accuracy": 0.87},
        {"step": 260, "epoch": 2.0, "examples_seen": 2080, "train_loss": 0.2, "train_accuracy": 0.93,
         "val_loss": float("nan"), "val_accuracy": 0.9},
    ]


def test_training_curves_written(tmp_path):
    paths = plot_training_curves(records(), tmp_path)
    assert paths == [tmp_path / "loss.png", tmp_path / "accuracy.png"]
    for p in paths:
        assert_png(p)
    assert plt.get_fignums() == []


def test_plot_with_no_data_is_skipped(tmp_path):
    recs = [{k: v for k, v in r.items() if "accuracy" not in k} for r in records()]
    assert plot_training_curves(recs, tmp_path) == [tmp_path / "loss.png"]
    assert not (tmp_path / "accuracy.png").exists()
    assert plot_training_curves([], tmp_path / "empty") == []
    assert plot_training_curves([{"step": 1, "val_accuracy": None}], tmp_path / "none") == []


def test_training_curves_only_validation_or_no_x_axis_keys(tmp_path):
    only_val = [{"step": 10 * i, "val_loss": 1.0 / i} for i in range(1, 4)]  # no examples_seen, no epoch
    assert_png(plot_training_curves(only_val, tmp_path / "a")[0])
    bare = [{"train_loss": 0.9}, {"train_loss": 0.5}]  # no x at all: plotted against evaluation index
    assert_png(plot_training_curves(bare, tmp_path / "b")[0])
    single = [{"examples_seen": 8, "epoch": 0.1, "train_accuracy": 0.5}]
    assert [p.name for p in plot_training_curves(single, tmp_path / "c")] == ["accuracy.png"]
    assert plt.get_fignums() == []


def test_confusion_matrix_png(tmp_path):
    path = plot_confusion_matrix([[5, 1, 0], [2, 7, 0], [0, 3, 0]], ["a", "b", "c"], tmp_path / "sub" / "cm.png")
    assert path == tmp_path / "sub" / "cm.png"
    assert_png(path)
    assert_png(plot_confusion_matrix([[0, 0], [0, 0]], ["x", "y"], tmp_path / "zeros.png", title="all zero"))
    assert plt.get_fignums() == []


def test_confusion_matrix_shape_mismatch(tmp_path):
    with pytest.raises(ValueError):
        plot_confusion_matrix([[1, 2], [3, 4]], ["a", "b", "c"], tmp_path / "cm.png")
    assert not (tmp_path / "cm.png").exists()
