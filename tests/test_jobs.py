"""The jobs as importable functions and as the CLI: one resolved config whichever way a run
is started (recipe through Python or the CLI, a saved training_config.json, a config file
plus options), reruns that reproduce, predict/evaluate that agree with their commands,
and truncation stated in the run summary and report. Tiny random models, real SMS data."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from helpers import sms_rows as _sms_rows

import lmclassify
from lmclassify import DataConfig, ModelConfig, RunConfig, TrainConfig
from lmclassify.cli import build_parser, main
from lmclassify.cli.options import config_from_args

TRAIN_ARGS = ["--epochs", "1", "--batch-size", "8", "--learning-rate", "1e-3", "--seed", "7"]


pytestmark = pytest.mark.one_thread  # tiny models: a 2-thread pool only adds waiting (conftest.py)




def _write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    """rows of (label, text), written as text,label."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows([(t, y) for y, t in rows])
    return path


def _sms_csv(sms_file: Path, out: Path, n: int = 160) -> Path:
    rows = _sms_rows(sms_file)
    return _write_csv(out, [r for r in rows if r[0] == "spam"][: n // 2] + [r for r in rows if r[0] == "ham"][: n // 2])


def _json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def _cli_ok(*argv: str) -> None:
    assert main(list(argv)) == 0


@pytest.fixture(scope="module")
def base(tmp_path_factory, tiny_gpt2_dir, sms_file):
    """One CLI run with a data path relative to the working directory it was started in."""
    d = tmp_path_factory.mktemp("jobs")
    data = _sms_csv(sms_file, d / "sms.csv")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(d)
        _cli_ok("train", "--data", "sms.csv", "--model", str(tiny_gpt2_dir), "--output", "out", *TRAIN_ARGS)
    return d / "out", data


# ---- (a) a recipe through Python and through the CLI -----------------------------------------

def test_recipe_through_python_and_cli_resolves_and_scores_the_same(tmp_path, tiny_gpt2_dir, sms_file, capsys):
    api = lmclassify.train(RunConfig(model=ModelConfig(name=str(tiny_gpt2_dir)), data=DataConfig(recipe="sms-spam"),
                                     train=TrainConfig(epochs=1)), tmp_path / "api", progress=False)
    _cli_ok("train", "--recipe", "sms-spam", "--model", str(tiny_gpt2_dir), "--epochs", "1",
            "--output", str(tmp_path / "cli"))
    a, c = _json(tmp_path / "api" / "training_config.json"), _json(tmp_path / "cli" / "training_config.json")
    assert a == c
    assert a == json.loads(json.dumps(api["config"]))  # the returned config is the saved one
    # the recipe's own options (tuned for smollm2-135m, a decoder like tiny GPT-2) and its data handling
    assert a["data"]["recipe"] == "sms-spam" and a["data"]["balance"] == "undersample"
    assert a["data"]["split"] == [0.7, 0.1, 0.2] and a["data"]["positive_label"] == "spam"
    assert (a["train"]["epochs"], a["train"]["batch_size"], a["train"]["learning_rate"],
            a["train"]["weight_decay"], a["model"]["train_layers"]) == (1, 8, 5e-5, 0.1, 1)
    assert a["model"]["name"] == str(tiny_gpt2_dir) and a["model"]["task"] == "single"
    ma, mc = _json(tmp_path / "api" / "metrics.json"), _json(tmp_path / "cli" / "metrics.json")
    assert {s: ma[s]["n"] for s in ("train", "validation", "test")} == {"train": 1045, "validation": 149, "test": 300}
    for split in ("train", "validation", "test"):
        assert ma[split] == mc[split], split
    assert ma["test"]["positive_label"] == "spam"
    assert {k: v for k, v in ma.items() if k != "train_seconds"} == {k: v for k, v in mc.items() if k != "train_seconds"}


# ---- (b) a saved training_config.json reruns the run ------------------------------------------

def test_saved_config_has_absolute_data_paths(base):
    out, data = base
    cfg = _json(out / "training_config.json")
    assert cfg["data"]["data"] == str(data.resolve())
    assert Path(cfg["data"]["data"]).is_absolute()


def test_rerun_from_saved_config_reproduces_the_metrics_from_anywhere(base, tmp_path, monkeypatch):
    out, _ = base
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    _cli_ok("train", "--config", str(out / "training_config.json"), "--output", "again")
    again = elsewhere / "again"
    assert _json(again / "training_config.json") == _json(out / "training_config.json")
    m0, m1 = _json(out / "metrics.json"), _json(again / "metrics.json")
    for split in ("train", "validation", "test"):
        assert m1[split] == m0[split], split
    assert (m1["steps"], m1["best_step"]) == (m0["steps"], m0["best_step"])


def test_rerun_through_python_from_saved_config(base, tmp_path):
    out, _ = base
    r = lmclassify.train(RunConfig.load(out / "training_config.json"), tmp_path / "py", progress=False)
    assert r["metrics"]["test"] == _json(out / "metrics.json")["test"]


# ---- (c) options given override the config file ------------------------------------------------

def _diff(a: dict, b: dict) -> dict:
    return {(s, k): (a[s][k], b[s][k]) for s in a for k in a[s] if a[s][k] != b[s][k]}


def test_command_line_options_override_the_config_file(base, tmp_path):
    out, _ = base
    _cli_ok("train", "--config", str(out / "training_config.json"), "--epochs", "2", "--output", str(tmp_path / "e2"))
    d = _diff(_json(out / "training_config.json"), _json(tmp_path / "e2" / "training_config.json"))
    assert d == {("train", "epochs"): (1, 2)}
    assert _json(tmp_path / "e2" / "metrics.json")["steps"] == 2 * _json(out / "metrics.json")["steps"]


def _parsed(*argv: str) -> RunConfig:
    return config_from_args(build_parser().parse_args(["train", *argv, "--output", "x"]))


def test_override_precedence_without_training(base, tmp_path, monkeypatch):
    """Each kind of option given beside --config replaces only itself; a data source given
    replaces the file's (no 'only one data source' clash), relative to the working directory."""
    out, _ = base
    saved = RunConfig.load(out / "training_config.json").to_dict()
    cfg = str(out / "training_config.json")
    assert _diff(saved, _parsed("--config", cfg, "--lr", "0.002").to_dict()) == \
        {("train", "learning_rate"): (1e-3, 2e-3)}
    assert _diff(saved, _parsed("--config", cfg, "--pooling", "mean", "--no-keep-best").to_dict()) == \
        {("model", "pooling"): ("last", "mean"), ("train", "keep_best"): (True, False)}
    monkeypatch.chdir(tmp_path)
    got = _parsed("--config", cfg, "--train", "tr.csv", "--test", "te.csv").to_dict()
    assert got["data"]["data"] is None
    assert (got["data"]["train"], got["data"]["test"]) == (str(tmp_path / "tr.csv"), str(tmp_path / "te.csv"))
    assert got["model"] == saved["model"] and got["train"] == saved["train"]


# ---- (d) config files: unknown keys, relative paths ---------------------------------------------

@pytest.mark.parametrize("content,named", [
    ({"train": {"epoch": 1}}, "epoch"),
    ({"model": {"name": "x", "poolin": "mean"}}, "poolin"),
    ({"trian": {"epochs": 1}}, "trian"),
])
def test_unknown_config_key_is_exit_2_and_one_line_naming_it(tmp_path, capsys, content, named):
    f = tmp_path / "run.json"
    f.write_text(json.dumps(content))
    assert main(["train", "--config", str(f), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lmclassify: error:") and "unknown" in err[0], err
    assert named in err[0].split("(known")[0], err  # named before the list of the known ones
    assert not (tmp_path / "out").exists()


def test_unknown_key_in_a_yaml_config(tmp_path, capsys):
    f = tmp_path / "run.yaml"
    f.write_text("train:\n  epochs: 1\n  learnig_rate: 0.1\n")
    assert main(["train", "--config", str(f), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "learnig_rate" in err[0]


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_relative_paths_in_a_config_file_are_relative_to_its_folder(tmp_path, monkeypatch, sms_file, tiny_gpt2_dir,
                                                                    suffix):
    rows = _sms_rows(sms_file)
    spam, ham = [r for r in rows if r[0] == "spam"], [r for r in rows if r[0] == "ham"]
    conf = tmp_path / "project" / "conf"
    _write_csv(conf / "data" / "train.csv", spam[:30] + ham[:30])
    _write_csv(conf / "data" / "test.csv", spam[30:40] + ham[30:40])
    run = {"model": {"name": str(tiny_gpt2_dir)}, "data": {"train": "data/train.csv", "test": "data/test.csv"},
           "train": {"epochs": 1, "batch_size": 8, "learning_rate": 1e-3}}
    f = conf / f"run{suffix}"
    if suffix == ".json":
        f.write_text(json.dumps(run))
    else:
        import yaml

        f.write_text(yaml.safe_dump(run))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # neither the config's folder nor its parent
    _cli_ok("train", "--config", str(Path("..") / "project" / "conf" / f.name), "--output", "out")
    saved = _json(tmp_path / "cwd" / "out" / "training_config.json")["data"]
    assert saved["train"] == str((conf / "data" / "train.csv").resolve())
    assert saved["test"] == str((conf / "data" / "test.csv").resolve())
    assert _json(tmp_path / "cwd" / "out" / "metrics.json")["test"]["n"] == 20


# ---- (e) predict / evaluate: Python = CLI ------------------------------------------------------

TEXTS = ["WINNER!! You have been selected to receive a £900 prize reward!", "Ok lar... Joking wif u oni",
         "Free entry in 2 a wkly comp", "I'll call you later tonight", "x", "ünïcödé ✓ 🙂"]


def test_predict_python_equals_cli(base, capsys, tmp_path):
    out, _ = base
    records = lmclassify.predict(out, TEXTS)
    capsys.readouterr()
    argv = ["predict", str(out)]
    for t in TEXTS:
        argv += ["--text", t]
    _cli_ok(*argv)
    cli = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert cli == json.loads(json.dumps(records))
    assert [r["text"] for r in records] == TEXTS and {r["label"] for r in records} <= {"ham", "spam"}
    # from a file too
    f = tmp_path / "in.txt"
    f.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    _cli_ok("predict", str(out), "--input", str(f), "--output", str(tmp_path / "p.jsonl"))
    from_file = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text(encoding="utf-8").splitlines()]
    assert from_file == cli


def test_evaluate_python_equals_cli(base, tmp_path, capsys):
    out, data = base
    m = lmclassify.evaluate(out, data)
    _cli_ok("evaluate", str(out), "--data", str(data), "--output", str(tmp_path / "m.json"))
    assert _json(tmp_path / "m.json") == json.loads(json.dumps(m))
    assert m["n"] == 160 and "n=160" in capsys.readouterr().out
    clf = lmclassify.load(out)
    with open(data, encoding="utf-8", newline="") as f:
        texts = list(csv.DictReader(f))
    assert m["accuracy"] == clf.score([r["text"] for r in texts], [r["label"] for r in texts])


# ---- (f) truncation is stated -----------------------------------------------------------------

def test_truncation_counts_per_split_in_metrics_summary_and_report(tmp_path, sms_file, tiny_gpt2_dir, capsys):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_gpt2_dir)
    def n_tok(text: str) -> int:
        return len(tok(text)["input_ids"])  # GPT-2 adds no special tokens

    rows = _sms_rows(sms_file)
    short = {y: [r for r in rows if r[0] == y and n_tok(r[1]) <= 8] for y in ("ham", "spam")}
    long = {y: [r for r in rows if r[0] == y and n_tok(r[1]) > 8] for y in ("ham", "spam")}
    short["spam"] += [("spam", t) for t in ("WIN cash now!", "Claim your prize", "FREE ringtone txt")]
    assert all(n_tok(t) <= 8 for _, t in short["spam"]) and len(short["spam"]) >= 4 and len(short["ham"]) >= 34
    train = long["spam"][:20] + long["ham"][:17] + short["spam"][:2] + short["ham"][:21]  # 37 long
    val = long["spam"][20:25] + short["ham"][21:26] + short["spam"][2:3]  # 5 long
    test = short["ham"][26:34] + short["spam"][3:4]  # none long
    files = {s: _write_csv(tmp_path / f"{s}.csv", r) for s, r in (("train", train), ("validation", val),
                                                                     ("test", test))}
    out = tmp_path / "out"
    _cli_ok("train", "--train", str(files["train"]), "--validation", str(files["validation"]), "--test",
            str(files["test"]), "--model", str(tiny_gpt2_dir), "--max-length", "8", "--output", str(out), *TRAIN_ARGS)
    summary = capsys.readouterr().out
    m = _json(out / "metrics.json")
    assert m["truncated"] == {"train": 37, "validation": 5, "test": 0}
    assert [m[s]["truncated"] for s in ("train", "validation", "test")] == [37, 5, 0]
    lines = {s: next(x for x in summary.splitlines() if x.strip().startswith(s)) for s in ("train", "validation", "test")}
    assert "37 truncated" in lines["train"] and "5 truncated" in lines["validation"]
    assert "truncated" not in lines["test"]
    report = (out / "report.md").read_text()
    assert "texts longer than max_length 8 were truncated: 37 in train, 5 in validation" in report
    assert "in test" not in report.split("## Notes")[1].split("##")[0]
    _cli_ok("evaluate", str(out), "--data", str(files["train"]))
    assert "37 truncated" in capsys.readouterr().out
    assert lmclassify.evaluate(out, files["validation"])["truncated"] == 5


def test_no_truncation_no_note(base):
    out, _ = base
    m = _json(out / "metrics.json")
    assert m["truncated"] == {"train": 0, "validation": 0, "test": 0}  # SMS texts fit in 256 GPT-2 tokens
    assert "truncated:" not in (out / "report.md").read_text()
