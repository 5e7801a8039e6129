"""The default decoder for real: SmolLM2-135M-Instruct from its GGUF wheel, fine-tuned on a
slice of the real SMS data through the CLI, then served by plain transformers."""
from __future__ import annotations

import json

import pytest

from lmclassify.cli import main


@pytest.mark.slow
def test_smollm2_learns_spam_from_a_slice(tmp_path, sms_file):
    import csv

    rows = [line.split("\t", 1) for line in sms_file.read_text(encoding="utf-8").splitlines()]
    spam = [r for r in rows if r[0] == "spam"][:100]
    ham = [r for r in rows if r[0] == "ham"][:100]
    data = tmp_path / "sms.csv"
    with open(data, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for label, text in spam + ham:
            w.writerow([text, label])
    out = tmp_path / "model"
    assert main(["train", "--data", str(data), "--output", str(out), "--epochs", "3", "--seed", "1"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    meta = json.loads((out / "lmclassify.json").read_text())
    assert meta["input_template"] == "chat" and meta["transformers_compatible"]
    assert m["parameters"]["trainable"] < 0.05 * m["parameters"]["total"]  # last block + norm + head
    assert m["feature_cache"] is True
    assert m["test"]["accuracy"] >= 0.85, m["test"]
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(out), device="cpu")
    texts = ["WINNER!! As a valued network customer you have been selected to receive a £900 prize reward!",
             "I'll be home late tonight, save me some dinner"]
    from lmclassify import TextClassifier

    assert [r["label"] for r in pipe(texts)] == TextClassifier.load(out, device="cpu").predict(texts)
