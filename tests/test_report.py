"""report.md carries the numbers from the metrics, the notes, the plots and the config."""
from __future__ import annotations

import json
import re

from lmclassify.evaluation.metrics import classification_metrics
from lmclassify.evaluation.report import render_report, write_report

NAMES = ["ham", "spam"]


def metrics():
    return {
        "train": classification_metrics([0, 0, 1, 1], [0, 0, 1, 1], NAMES, loss=0.1234567),
        "validation": classification_metrics([0, 1, 1, 0], [0, 1, 0, 0], NAMES, loss=0.4),
        "test": classification_metrics([0, 0, 0, 0, 1, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1, 1, 1, 0, 0], NAMES),
        "train_seconds": 12.3456,
        "parameters": {"trainable": 1536, "total": 124441344},
        "steps": 130,
        "stopped_early": False,
    }


def row(text, first):
    return next(line for line in text.splitlines() if line.startswith(f"| {first} |"))


def test_summary_table():
    text = render_report(metrics(), {}, title="run A")
    assert text.startswith("# run A\n")
    assert row(text, "train") == "| train | 4 | 0.1235 | 1.0000 | 1.0000 | 1.0000 | 1.0000 |"
    m = metrics()
    m["train"]["truncated"] = 3
    cut = render_report(m, {}, title="run A", columns=("loss", "accuracy"))
    assert row(cut, "train") == "| train | 4 | 0.1235 | 1.0000 | 3 |" and "| split | n | loss | accuracy | truncated |" in cut
    assert row(text, "validation").startswith("| validation | 4 | 0.4000 | 0.7500 |")
    # no loss on test: a dash, not 0
    assert row(text, "test").startswith("| test | 10 | — | 0.7000 | 0.7000 |")
    assert text.index("| train |") < text.index("| validation |") < text.index("| test |")
    assert "train_seconds: 12.3" in text
    assert "1,536 trainable of 124,441,344" in text
    assert "- steps: 130" in text and "- stopped_early: False" in text


def test_per_class_and_confusion_of_test_split():
    text = render_report(metrics(), {}, title="t")
    assert "## Per class (test)" in text
    assert row(text, "ham") == "| ham | 0.6000 | 0.7500 | 0.6667 | 4 |"
    assert row(text, "spam") == "| spam | 0.8000 | 0.6667 | 0.7273 | 6 |"
    assert "## Confusion matrix (test)" in text
    assert "| true \\ predicted | ham | spam |" in text
    cm = text[text.index("## Confusion matrix"):]
    assert row(cm, "ham") == "| ham | 3 | 1 |" and row(cm, "spam") == "| spam | 2 | 4 |"
    assert "Positive class `spam` (test): precision 0.8000, recall 0.6667, f1 0.7273." in text


def test_falls_back_to_last_split_present():
    m = {"train": classification_metrics([0, 1, 2], [0, 1, 1], ["a", "b", "c"]),
         "validation": classification_metrics([0, 1, 2, 2], [0, 2, 2, 2], ["a", "b", "c"])}
    text = render_report(m, {}, title="t")
    assert "| test |" not in text and "train_seconds" not in text
    assert "## Per class (validation)" in text and "## Confusion matrix (validation)" in text
    assert "| b | 0 | 0 | 1 |" in text  # validation matrix, not train's


def test_notes_plots_and_config():
    config = {"model": {"name": "gpt2", "pooling": "last"}, "train": {"lr": 5e-5, "epochs": 5}}
    notes = ["this head cannot be loaded by plain transformers"]
    text = render_report(metrics(), config, title="t", notes=notes, plots=["loss.png", "confusion_matrix.png"])
    assert "- this head cannot be loaded by plain transformers" in text
    assert "![loss](loss.png)" in text and "![confusion_matrix](confusion_matrix.png)" in text
    block = re.search(r"```json\n(.*?)\n```", text, re.S)
    assert json.loads(block.group(1)) == config


def test_no_splits_and_awkward_names():
    text = render_report({}, {"path": object()}, title="empty")
    assert "No split was evaluated." in text and "## Notes" not in text and "## Plots" not in text
    m = {"test": classification_metrics([0, 1], [0, 1], ["a|b", "c"])}
    assert "| a\\|b | 1.0000 |" in render_report(m, {}, title="t")


def test_write_report(tmp_path):
    text = render_report(metrics(), {"x": 1}, title="ünïcode — run")
    path = write_report(tmp_path / "out" / "report.md", text)
    assert path.read_text(encoding="utf-8") == text
