"""Every task shape end to end through the real CLI, on tiny random models and slices of
the real data sets: sentence pairs (joint and siamese, encoder and decoder), regression,
multi-label, encoder heads, class weights; save/load round trips; and the bad inputs of
each shape as one line and no output."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import torch

from lmclassify import TextClassifier
from lmclassify.estimators.artifacts import EXTRA
from lmclassify.cli import main

DATA = Path(os.environ.get("LMCLASSIFY_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")


pytestmark = pytest.mark.one_thread  # tiny models: a 2-thread pool only adds waiting (conftest.py)


def _need(*parts: str) -> Path:
    p = DATA.joinpath(*parts)
    if not p.is_file():
        pytest.skip(f"data not found at {p}")
    return p


def _write_csv(path: Path, header: list[str], rows: list) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _thirds(rows: list, n: tuple[int, int, int]) -> tuple[list, list, list]:
    return rows[:n[0]], rows[n[0]:n[0] + n[1]], rows[n[0] + n[1]:sum(n)]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, dict[str, Path]]:
    """Train/validation/test files cut from the real SST-2, MRPC, STS-B and GoEmotions."""
    d = tmp_path_factory.mktemp("shapes")
    out: dict[str, dict[str, Path]] = {}
    lines = _need("sst2", "stsa.binary.train").read_text(encoding="utf-8").splitlines()
    rows = [(t, "positive" if y == "1" else "negative") for y, _, t in (x.partition(" ") for x in lines[::50])]
    out["sst2"] = {s: _write_csv(d / f"sst2_{s}.csv", ["text", "label"], r)
                   for s, r in zip(("train", "validation", "test"), _thirds(rows, (64, 24, 24)))}
    lines = _need("mrpc", "train.tsv").read_text(encoding="utf-8-sig").splitlines()[1:]
    rows = [(c[3], c[4], c[0]) for c in (x.split("\t") for x in lines[::20])]
    out["mrpc"] = {s: _write_csv(d / f"mrpc_{s}.csv", ["sentence1", "sentence2", "label"], r)
                   for s, r in zip(("train", "validation", "test"), _thirds(rows, (64, 24, 24)))}
    lines = _need("stsb", "train.tsv").read_text(encoding="utf-8").splitlines()[1:]
    rows = [(c[7], c[8], c[9]) for c in (x.split("\t") for x in lines[::30])]
    out["stsb"] = {s: _write_csv(d / f"stsb_{s}.csv", ["s1", "s2", "score"], r)
                   for s, r in zip(("train", "validation", "test"), _thirds(rows, (64, 24, 24)))}
    names = _need("goemotions", "labels.txt").read_text().split()
    rows = []
    for line in _need("goemotions", "train.tsv").read_text(encoding="utf-8").splitlines()[:400]:
        text, ids, _ = line.split("\t")
        rows.append({"text": text, "label": [names[int(i)] for i in ids.split(",")]})
    train = rows[:200]
    known = {x for r in train for x in r["label"]}
    rest = [r for r in rows[200:] if set(r["label"]) <= known]  # unseen emotions are an error
    out["goemotions"] = {}
    for s, r in (("train", train), ("validation", rest[:40]), ("test", rest[40:80])):
        p = d / f"emo_{s}.jsonl"
        p.write_text("".join(json.dumps(x) + "\n" for x in r), encoding="utf-8")
        out["goemotions"][s] = p
    # the same rows as CSV with ';'-joined labels, for --label-separator
    out["goemotions_csv"] = {s: _write_csv(d / f"emo_{s}.csv", ["text", "label"],
                                           [(x["text"], ";".join(x["label"])) for x in
                                            map(json.loads, p.read_text(encoding="utf-8").splitlines())])
                             for s, p in out["goemotions"].items()}
    return out


def _train(files: dict[str, Path], model: Path, out: Path, *extra: str) -> int:
    return main(["train", "--train", str(files["train"]), "--validation", str(files["validation"]),
                 "--test", str(files["test"]), "--model", str(model), "--output", str(out),
                 "--epochs", "2", "--batch-size", "16", "--learning-rate", "1e-3", "--seed", "3", *extra])


def _json(p: Path):
    return json.loads(p.read_text())


def _predict_jsonl(capsys, *args: str) -> list[dict]:
    capsys.readouterr()
    assert main(["predict", *args]) == 0
    return [json.loads(x) for x in capsys.readouterr().out.splitlines()]


# ---- encoders ---------------------------------------------------------------------------

def test_encoder_single_label_uses_cls_pooling_and_its_own_head(data, tiny_bert_dir, tmp_path, capsys):
    out = tmp_path / "m"
    assert _train(data["sst2"], tiny_bert_dir, out) == 0
    meta, cfg = _json(out / "lmclassify.json"), _json(out / "training_config.json")
    assert cfg["model"]["pooling"] == "cls" and cfg["model"]["head"] == "linear"
    assert meta["task"] == "single_label_classification" and meta["own_head"] is True
    # the linear head on [CLS] is folded into BERT's own head: plain transformers agrees
    assert meta["transformers_compatible"] is True and meta["folded_head"] is True
    from safetensors import safe_open

    with safe_open(str(out / EXTRA), "pt") as f:
        assert {"head.weight", "head.bias"} <= set(f.keys())
    m = _json(out / "metrics.json")
    for split in ("train", "validation", "test"):
        assert {"accuracy", "f1_macro", "f1", "loss"} <= set(m[split])
    assert m["test"]["positive_label"] == "positive" and m["task"] == "single"
    assert cfg["model"]["train_layers"] == 3  # resolved per model kind: every block for encoders,
    assert m["parameters"]["trainable"] < m["parameters"]["total"] / 2  # embeddings (most of tiny BERT) frozen
    rows = _predict_jsonl(capsys, str(out), "--text", "a wonderful film", "--text", "dull")
    assert [set(r) for r in rows] == [{"text", "label", "score", "probabilities"}] * 2
    assert "Notes" in (out / "report.md").read_text()


@pytest.mark.parametrize("model,mode", [("tiny_bert_dir", "joint"), ("tiny_bert_dir", "siamese"),
                                        ("tiny_gpt2_dir", "joint"), ("tiny_llama_dir", "siamese")])
def test_sentence_pairs_through_the_cli(data, request, tmp_path, capsys, model, mode):
    out = tmp_path / "m"
    assert _train(data["mrpc"], request.getfixturevalue(model), out, "--text-column", "sentence1",
                  "--text-pair-column", "sentence2", "--pair-mode", mode) == 0
    meta, cfg = _json(out / "lmclassify.json"), _json(out / "training_config.json")
    assert meta["pairs"] is True and cfg["model"]["pair_mode"] == mode and cfg["data"]["text_pair_column"] == "sentence2"
    m = _json(out / "metrics.json")
    assert {"accuracy", "f1", "f1_macro"} <= set(m["validation"]) and m["validation"]["n"] == 24
    rows = _predict_jsonl(capsys, str(out), "--text", "He left early.", "--text-pair", "He went home early.")
    assert rows[0]["text_pair"] == "He went home early." and set(rows[0]["probabilities"]) == {"0", "1"}
    # a file: the pair column is the one used in training
    rows = _predict_jsonl(capsys, str(out), "--input", str(data["mrpc"]["test"]))
    assert len(rows) == 24
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data", str(data["mrpc"]["test"]), "--text-column", "sentence1"]) == 0
    assert "accuracy" in capsys.readouterr().out
    if model == "tiny_gpt2_dir":  # decoders join the pair with a template transformers cannot know
        assert any("joined into one text" in n for n in meta["notes"])


def test_regression_through_the_cli(data, tiny_bert_dir, tmp_path, capsys):
    out = tmp_path / "m"
    assert _train(data["stsb"], tiny_bert_dir, out, "--text-column", "s1", "--text-pair-column", "s2",
                  "--label-column", "score", "--monitor", "val_pearson") == 0
    m = _json(out / "metrics.json")
    assert m["task"] == "regression"
    for split in ("train", "validation", "test"):
        assert {"pearson", "spearman", "mse", "loss"} <= set(m[split]) and "accuracy" not in m[split]
    log = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert all("val_pearson" in r and "train_accuracy" not in r for r in log)
    assert m["best_step"] == max(log, key=lambda r: r["val_pearson"])["step"]  # kept by the monitored metric
    meta = _json(out / "lmclassify.json")
    assert meta["task"] == "regression" and set(meta["task_state"]) == {"mean", "std"}
    assert _json(out / "config.json")["problem_type"] == "regression"
    assert (out / "pearson.png").is_file() and not (out / "confusion_matrix.png").exists()
    assert "| split | n | loss | pearson |" in (out / "report.md").read_text()
    rows = _predict_jsonl(capsys, str(out), "--text", "A man plays.", "--text-pair", "A man is playing.")
    assert set(rows[0]) == {"text", "text_pair", "value"} and isinstance(rows[0]["value"], float)
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data", str(data["stsb"]["test"]), "--text-column", "s1",
                 "--label-column", "score"]) == 0
    assert "pearson" in capsys.readouterr().out


def test_multi_label_through_the_cli(data, tiny_bert_dir, tmp_path, capsys):
    out = tmp_path / "m"
    assert _train(data["goemotions"], tiny_bert_dir, out, "--monitor", "val_f1_macro",
                  "--class-weights", "auto", "--train-layers", "1") == 0
    m = _json(out / "metrics.json")
    assert m["task"] == "multi"
    for split in ("train", "validation", "test"):
        assert {"f1_micro", "f1_macro", "accuracy", "per_class"} <= set(m[split])
    meta = _json(out / "lmclassify.json")
    n_labels = len(meta["labels"]["classes"])
    assert len(meta["task_state"]["thresholds"]) == n_labels and len(meta["task_state"]["pos_weight"]) == n_labels
    assert set(m["calibration"]["thresholds"]) == set(meta["labels"]["classes"])
    assert "thresholds were tuned on the validation split" in (out / "report.md").read_text()
    rows = _predict_jsonl(capsys, str(out), "--text", "thank you so much!")
    assert set(rows[0]) == {"text", "labels", "probabilities"} and len(rows[0]["probabilities"]) == n_labels
    assert all(lab in meta["labels"]["classes"] for lab in rows[0]["labels"])
    assert main(["predict", str(out), "--text", "wow", "--output", str(tmp_path / "p.csv")]) == 0
    header = (tmp_path / "p.csv").read_text().splitlines()[0].split(",")
    assert header[:2] == ["text", "labels"] and len(header) == 2 + n_labels


def test_multi_label_from_csv_with_a_label_separator(data, tiny_gpt2_dir, tmp_path):
    out = tmp_path / "m"
    assert _train(data["goemotions_csv"], tiny_gpt2_dir, out, "--label-separator", ";", "--epochs", "1") == 0
    meta = _json(out / "lmclassify.json")
    assert meta["task"] == "multi_label_classification" and meta["task_state"]["separator"] == ";"
    assert ";" not in "".join(meta["labels"]["classes"])


def test_mlp_head_and_class_weights_on_a_decoder(data, tiny_gpt2_dir, tmp_path):
    out = tmp_path / "m"
    assert _train(data["sst2"], tiny_gpt2_dir, out, "--head", "mlp", "--class-weights", "2,1", "--pooling", "mean") == 0
    meta = _json(out / "lmclassify.json")
    assert _json(out / "training_config.json")["model"]["head"] == "mlp" and meta["transformers_compatible"] is False
    assert meta["task_state"]["class_weights"] == [2.0, 1.0]
    from safetensors import safe_open

    with safe_open(str(out / EXTRA), "pt") as f:
        assert {"head.0.weight", "head.3.weight"} <= set(f.keys())


# ---- save / load round trips ------------------------------------------------------------

def _rows(path: Path, pair: bool = False):
    with open(path, encoding="utf-8") as f:
        rows = list(csv.reader(f))[1:]
    return ([(r[0], r[1]) for r in rows], [r[2] for r in rows]) if pair else ([r[0] for r in rows], [r[1] for r in rows])


@pytest.mark.parametrize("case", ["encoder_mlp_attention", "siamese_regression", "decoder_pairs", "multi_label"])
def test_save_load_round_trip_predicts_the_same(data, request, tmp_path, case):
    model, files, pair, mc = {
        "encoder_mlp_attention": ("tiny_bert_dir", "sst2", False, dict(head="mlp", pooling="attention", train_layers=1)),
        "siamese_regression": ("tiny_bert_dir", "stsb", True, dict(pair_mode="siamese", pooling="mean")),
        "decoder_pairs": ("tiny_llama_dir", "mrpc", True, dict(train_layers=2)),
        "multi_label": ("tiny_gpt2_dir", "goemotions_csv", False, dict(train_layers=1)),
    }[case]
    x, y = _rows(data[files]["train"], pair)
    xv, yv = _rows(data[files]["validation"], pair)
    clf = TextClassifier(str(request.getfixturevalue(model)), **mc, epochs=1, batch_size=16, learning_rate=1e-3,
                         progress=False, label_separator=";")
    clf.fit(x, y, validation=(xv, yv))
    clf.save(tmp_path / "m")
    back = TextClassifier.load(tmp_path / "m", device="cpu")
    a, b = clf.decision_function(xv), back.decision_function(xv)
    assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
    assert back.predict(xv) == clf.predict(xv)
    assert back.classes_ == clf.classes_
    scalars = lambda m: {k: v for k, v in m.items() if isinstance(v, float)}  # noqa: E731
    assert scalars(back.evaluate(xv, yv)) == pytest.approx(scalars(clf.evaluate(xv, yv)), abs=1e-5)


# ---- bad input for each shape -----------------------------------------------------------

@pytest.mark.parametrize("case,expect", [
    ("pair_column_missing", "no column 'sentence3'"),
    ("unseen_test_label", "test split"),
    ("non_numeric_target", "regression targets must be numbers; row 3 has 'high'"),
    ("class_weight_count", "--class-weights has 3 weights but there are 2 classes"),
    ("monitor_not_of_task", "--monitor val_accuracy is not a metric of a regression task"),
    ("pairs_at_predict", "classifies single texts; drop --text-pair"),
    ("balance_regression", "--balance undersample balances classes; a regression task has none"),
])
def test_bad_input_of_each_shape_is_one_line_and_leaves_no_output(data, tiny_bert_dir, tmp_path, capsys, case, expect):
    files, extra = dict(data["mrpc"]), ["--text-column", "sentence1", "--text-pair-column", "sentence2"]
    if case == "pair_column_missing":
        extra[-1] = "sentence3"
    elif case == "unseen_test_label":
        files["test"] = _write_csv(tmp_path / "t.csv", ["sentence1", "sentence2", "label"], [("a", "b", "7")])
    elif case == "non_numeric_target":
        files = {s: _write_csv(tmp_path / f"{s}.csv", ["sentence1", "sentence2", "label"],
                               [("a", "b", "1.5"), ("c", "d", "2.5"), ("e", "f", "high")]) for s in files}
        extra += ["--task", "regression"]
    elif case == "class_weight_count":
        extra += ["--class-weights", "1,2,3"]
    elif case in ("monitor_not_of_task", "balance_regression"):
        files = data["stsb"]
        extra = ["--text-column", "s1", "--text-pair-column", "s2", "--label-column", "score"]
        extra += ["--monitor", "val_accuracy"] if case == "monitor_not_of_task" else ["--balance", "undersample"]
    out = tmp_path / "out"
    capsys.readouterr()
    if case == "pairs_at_predict":
        assert _train(data["sst2"], tiny_bert_dir, out, "--epochs", "1") == 0
        capsys.readouterr()  # the training's own progress lines
        rc = main(["predict", str(out), "--text", "a", "--text-pair", "b"])
    else:
        rc = _train(files, tiny_bert_dir, out, *extra)
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lmclassify: error:") and expect in err[0], err
    if case != "pairs_at_predict":
        assert not out.exists() and not list(tmp_path.glob("out.partial*"))
