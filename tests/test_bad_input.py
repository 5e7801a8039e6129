"""Every bad input is refused cleanly, through the real CLI: one line on stderr
(``lmclassify: error: ...``) naming the option, file, line or column at fault, exit status 2,
no traceback, nothing written (no OUTPUT, no OUTPUT.partial, no temp file) and nothing that
existed touched.

One table per kind of input: options, data files, model directories, outputs. Option and
data cases name a model that does not exist, so only a check made before any model is loaded
can produce their message; model-directory cases tamper with a copy of one tiny model
trained once for the module (BERT with attention pooling: a sealed config.json and an
``lmclassify_extra.safetensors``).
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import pytest

from lmclassify.cli import main

SRC = Path(__file__).resolve().parents[1] / "src" / "lmclassify"

GOOD_ROWS = [f"text number {i},{'ab'[i % 2]}" for i in range(20)]
GOOD_CSV = "text,label\n" + "\n".join(GOOD_ROWS) + "\n"


# --- the invariant every case checks -------------------------------------------------------

def _tree(root: Path) -> dict:
    """Every path under ``root`` with its kind, mode, modification time and content hash:
    equal before and after means nothing was written, removed or touched."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
        out[str(p.relative_to(root))] = (p.is_dir(), st.st_mode, st.st_mtime_ns, digest)
    return out


def refused(argv: list[str], capsys, root: Path, *expect: str, stdin: Optional[bytes] = None,
            monkeypatch=None) -> str:
    """Run the CLI on ``argv`` in ``root`` and check it refused cleanly; returns the line."""
    before = _tree(root)
    capsys.readouterr()
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    rc = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err + out, err
    lines = err.strip().splitlines()
    assert rc == 2, (rc, err)
    assert len(lines) == 1 and lines[0].startswith("lmclassify: error: "), err
    for text in expect:
        assert text in lines[0], (text, lines[0])
    assert _tree(root) == before, "the failed command changed files"
    assert not [p for p in root.rglob("*") if re.search(r"\.partial|\.tmp|\.old-", p.name)]
    return lines[0]


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """A working directory holding a good data file; commands run in it."""
    (tmp_path / "good.csv").write_text(GOOD_CSV)
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- options: every one checked before any model is loaded -------------------------------

OPTIONS = [
    (["--epochs", "0"], "--epochs"),
    (["--epochs", "-1"], "--epochs"),
    (["--batch-size", "0"], "--batch-size"),
    (["--learning-rate", "nan"], "--learning-rate"),
    (["--learning-rate", "0"], "--learning-rate"),
    (["--learning-rate", "inf"], "--learning-rate"),
    (["--learning-rate=-1e-3"], "--learning-rate"),
    (["--warmup-ratio", "1.5"], "--warmup-ratio"),
    (["--warmup-ratio", "-0.1"], "--warmup-ratio"),
    (["--split", "0.5,0.5,0.5"], "split"),
    (["--split", "0.7,0.3"], "split"),
    (["--max-length", "1"], "--max-length"),
    (["--grad-accum", "0"], "--grad-accum"),
    (["--eval-every", "0"], "--eval-every"),
    (["--patience", "0"], "--patience"),
    (["--weight-decay", "-1"], "--weight-decay"),
    (["--max-grad-norm", "nan"], "--max-grad-norm"),
    (["--monitor", "val_nonsense"], "--monitor"),
    (["--monitor", "loss"], "--monitor"),
    (["--class-weights", "x"], "--class-weights"),
    (["--class-weights", "1,-1"], "--class-weights"),
    (["--save-every", "0"], "--save-every"),
    (["--eval-batch-size", "0"], "--eval-batch-size"),
    (["--train-layers", "-2"], "--train-layers"),
    (["--train-layers", "some"], "--train-layers"),
    (["--epochs", "x"], "--epochs"),
]
@pytest.mark.parametrize("opt,flag", [
    pytest.param(o, f, id=" ".join(o)) for o, f in OPTIONS])
def test_bad_option_is_refused_before_any_model_is_loaded(work, capsys, opt, flag):
    t0 = time.perf_counter()
    refused(["train", "--data", "good.csv", "--model", str(work / "no-such-model"), "-o", "out", *opt],
            capsys, work, flag)
    assert time.perf_counter() - t0 < 10


CONFIG_FILES = [  # a --config file: the same checks, naming the option or the file
    pytest.param("epochs.json", b'{"train": {"epochs": "3"}}', ["--epochs", "'3'"], id="epochs as text"),
    pytest.param("warmup.json", b'{"train": {"warmup_ratio": 2}}', ["--warmup-ratio"], id="warmup 2"),
    pytest.param("flag.json", b'{"train": {"keep_best": "yes"}}', ["keep_best"], id="flag as text"),
    pytest.param("pooling.json", b'{"model": {"pooling": "sideways"}}', ["--pooling", "'sideways'"], id="choice"),
    pytest.param("split.json", b'{"data": {"split": [0.5, 0.5, 0.5]}}', ["split", "1.5"], id="split"),
    pytest.param("typo.json", b'{"train": {"epoch": 3}}', ["typo.json", "epoch"], id="unknown option"),
    pytest.param("truncated.json", b'{"train": {"epochs": 3', ["truncated.json"], id="truncated"),
    pytest.param("array.json", b'[1, 2]', ["array.json"], id="not an object"),
    pytest.param("missing.json", None, ["missing.json"], id="missing"),
    pytest.param("undecodable.json", b'{"train": {"epochs": "\xff"}}', ["undecodable.json"], id="undecodable"),
]


@pytest.mark.parametrize("name,content,expect", CONFIG_FILES)
def test_bad_config_file(work, capsys, name, content, expect):
    if content is not None:
        (work / name).write_bytes(content)
    refused(["train", "--config", name, "--data", "good.csv", "--model", str(work / "no-such-model"), "-o", "out"],
            capsys, work, *expect)


# --- data files ------------------------------------------------------------------------------

DATA = {  # name: content
    "empty.csv": b"",
    "blank.csv": b"  \n\n",
    "header.csv": b"text,label\n",
    "empty_text.csv": b"text,label\nhello,a\n,b\nbye,a\n",
    "blank_text.csv": b"text,label\nhello,a\n   ,b\nbye,a\n",
    "empty_text.jsonl": b'{"text": "hello", "label": "a"}\n{"text": "", "label": "b"}\n',
    "empty_label.csv": b"text,label\nhello,a\nhi,\nbye,b\n",
    "empty_label.jsonl": b'{"text": "hello", "label": "a"}\n{"text": "hi", "label": ""}\n',
    "undecodable.csv": b"text,label\nhello,a\nh\xffi,b\nbye,b\n",
    "undecodable.conll": b"Hello\tO\n\nW\xf6rld\tB-loc\n",
    "columns.csv": b"text,category\nhello,a\nbye,b\n",
    "extra_field.csv": b"text,label\nhello,a\nhello, world,b\nbye,b\n",
    "not.parquet": b"this is not parquet",
    "malformed.jsonl": b'{"text": "a", "label": "x"}\n{"text": "b", "label"\n',
    "notag.conll": b"Hello\tO\nWorld\n",
    "badtag.conll": b"Hello\tO\nWorld\tLOC\n",
    "empty.conll": b"\n\n",
    "unseen.csv": b"text,label\nhello,a\nbye,c\n",
    "unseen.conll": b"Hello\tO\n\nWorld\tB-org\n",
    "good.conll": b"Hello\tO\nWorld\tB-loc\n\nNew\tB-loc\nYork\tI-loc\n\nhi\tO\n",
    "texts.txt": b"just a text\n",
}

TRAIN_DATA = [  # (id, options naming the data, what the line must hold)
    ("missing file", ["--data", "nope.csv"], ["nope.csv", "no such file"]),
    ("directory", ["--data", "folder"], ["folder", "is a directory"]),
    ("directory.csv", ["--data", "folder.csv"], ["folder.csv", "is a directory"]),
    ("empty file", ["--data", "empty.csv"], ["empty.csv", "empty"]),
    ("blank file", ["--data", "blank.csv"], ["blank.csv", "empty"]),
    ("header only", ["--data", "header.csv"], ["header.csv", "no data rows"]),
    ("empty text", ["--data", "empty_text.csv"], ["empty_text.csv", "line 3", "'text'"]),
    ("blank text", ["--data", "blank_text.csv"], ["blank_text.csv", "line 3", "'text'"]),
    ("empty text jsonl", ["--data", "empty_text.jsonl"], ["empty_text.jsonl", "line 2", "'text'"]),
    ("empty label", ["--data", "empty_label.csv"], ["empty_label.csv", "line 3", "'label'"]),
    ("empty label jsonl", ["--data", "empty_label.jsonl"], ["empty_label.jsonl", "line 2", "'label'"]),
    ("undecodable", ["--data", "undecodable.csv"], ["undecodable.csv", "line 3", "not UTF-8"]),
    ("undecodable conll", ["--train", "undecodable.conll"], ["undecodable.conll", "line 3", "not UTF-8"]),
    ("missing column", ["--data", "columns.csv"], ["columns.csv", "'label'", "'text', 'category'"]),
    ("missing text column", ["--data", "good.csv", "--text-column", "body"], ["good.csv", "'body'",
                                                                               "'text', 'label'"]),
    ("extra field", ["--data", "extra_field.csv"], ["extra_field.csv", "line 3"]),
    ("not parquet", ["--data", "not.parquet"], ["not.parquet", "Parquet"]),
    ("malformed jsonl", ["--data", "malformed.jsonl"], ["malformed.jsonl", "line 2"]),
    ("token without tag", ["--train", "notag.conll"], ["notag.conll", "line 2", "'World'"]),
    ("not an IOB tag", ["--train", "badtag.conll"], ["badtag.conll", "line 2", "'LOC'"]),
    ("no sentences", ["--train", "empty.conll"], ["empty.conll", "no sentences"]),
    ("unseen label in test", ["--train", "good.csv", "--test", "unseen.csv"], ["unseen.csv", "'c'"]),
    ("unseen tag in test", ["--train", "good.conll", "--test", "unseen.conll"], ["unseen.conll", "'B-org'", "line 3"]),
    ("txt has no labels", ["--data", "texts.txt"], ["texts.txt", "no labels"]),
    ("unsupported type", ["--data", "good.xlsx"], ["good.xlsx", "unsupported"]),
]


def _write_data(root: Path) -> None:
    for name, content in DATA.items():
        (root / name).write_bytes(content)
    (root / "folder").mkdir()
    (root / "folder.csv").mkdir()
    (root / "good.xlsx").write_bytes(b"PK\x03\x04")


@pytest.mark.parametrize("opts,expect", [pytest.param(o, e, id=i) for i, o, e in TRAIN_DATA])
def test_bad_training_data(work, capsys, opts, expect):
    _write_data(work)
    refused(["train", *opts, "--model", str(work / "no-such-model"), "-o", "out"], capsys, work, *expect)


# --- model directories ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_bert_dir) -> Path:
    """One tiny trained model for every tampering case (copied per case)."""
    d = tmp_path_factory.mktemp("bad-input-model")
    (d / "good.csv").write_text(GOOD_CSV)
    out = d / "model"
    rc = main(["train", "--data", str(d / "good.csv"), "--model", str(tiny_bert_dir), "-o", str(out),
               "--pooling", "attention", "--epochs", "1", "--batch-size", "8", "--seed", "3"])
    assert rc == 0
    for name in ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json",
                 "lmclassify.json", "training_config.json", "lmclassify_extra.safetensors"):
        assert (out / name).is_file(), name
    return out


def _truncate(p: Path) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _garble(p: Path) -> None:
    """Bytes 8..40 overwritten: inside a JSON document, or a safetensors header."""
    data = bytearray(p.read_bytes())
    data[8:40] = b"\xff\xfe<garbage>" + b"\x00" * 21
    p.write_bytes(bytes(data))


def _not_an_object(p: Path) -> None:
    p.write_text("[1, 2, 3]\n")


def _empty(p: Path) -> None:
    p.write_bytes(b"")


TAMPER: dict[str, Callable[[Path], None]] = {
    "truncated": _truncate, "garbled": _garble, "deleted": Path.unlink, "empty": _empty,
}
MODEL_FILES = ["model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "lmclassify.json",
               "training_config.json", "lmclassify_extra.safetensors"]
JSON_FILES = [f for f in MODEL_FILES if f.endswith(".json")]


def _use(command: str, directory: Path) -> list[str]:
    if command == "predict":
        return ["predict", str(directory), "--text", "hello there", "--device", "cpu"]
    return ["evaluate", str(directory), "--data", "good.csv", "--device", "cpu"]


CASES = ([(f, how) for f in MODEL_FILES for how in TAMPER] + [(f, "not an object") for f in JSON_FILES])


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize("name,how", [pytest.param(f, h, id=f"{f}-{h}") for f, h in CASES])
def test_tampered_model_directory(work, capsys, model_dir, command, name, how):
    d = work / "model"
    shutil.copytree(model_dir, d)
    (TAMPER.get(how) or _not_an_object)(d / name)
    refused(_use(command, d), capsys, work, name)


def _json_edit(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(p: Path) -> None:
        import json

        data = json.loads(p.read_text())
        edit(data)
        p.write_text(json.dumps(data))
    return apply


def _drop_tensor(p: Path) -> None:
    """A well-formed safetensors file that lacks one of the model's weights."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(p))
    del tensors[min(tensors)]
    save_file(tensors, str(p), metadata={"format": "pt"})


def _set(section: str, key: str, value) -> Callable[[dict], None]:
    return lambda d: d[section].__setitem__(key, value)


CONSISTENCY = [  # well-formed files that disagree with the model or hold impossible values
    ("model.safetensors", _drop_tensor, ["missing keys"]),
    ("lmclassify.json", _json_edit(lambda d: d.__setitem__("task", "nonsense")), ["'nonsense'"]),
    ("lmclassify.json", _json_edit(lambda d: d.__setitem__("labels", {"classes": ["a", "b", "c"], "type": "str"})),
     ["config.json", "3"]),
    ("lmclassify.json", _json_edit(lambda d: d.__setitem__("labels", 7)), ["'labels'"]),
    ("lmclassify.json", _json_edit(lambda d: d.__setitem__("labels", {"nope": 1})), ["labels"]),
    ("training_config.json", _json_edit(_set("train", "epochs", "x")), ["--epochs"]),
    ("training_config.json", _json_edit(_set("model", "pooling", "sideways")), ["--pooling"]),
    ("training_config.json", _json_edit(_set("model", "max_length", 0)), ["--max-length"]),
    ("training_config.json", _json_edit(_set("data", "text_column", 3)), ["text_column"]),
    ("training_config.json", _json_edit(lambda d: d.__setitem__("extra", {})), ["unknown config section"]),
    ("config.json", _json_edit(lambda d: d.__setitem__("lmclassify_model_type", "nonsense")), ["nonsense"]),
    ("config.json", _json_edit(lambda d: d.__setitem__("hidden_size", "wide")), []),
    ("tokenizer.json", _json_edit(lambda d: d.__setitem__("model", {"type": "Nonsense"})), ["tokenizer.json"]),
    ("lmclassify_extra.safetensors", _drop_tensor, []),
]


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize("name,edit,expect", [pytest.param(n, e, x, id=f"{n}-{i}")
                                              for i, (n, e, x) in enumerate(CONSISTENCY)])
def test_inconsistent_model_directory(work, capsys, model_dir, command, name, edit, expect):
    d = work / "model"
    shutil.copytree(model_dir, d)
    edit(d / name)
    refused(_use(command, d), capsys, work, name if name != "config.json" or not expect else "config.json",
            *expect)


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_missing_or_foreign_model_directory(work, capsys, model_dir, command):
    refused(_use(command, work / "nowhere"), capsys, work, "nowhere")
    (work / "plain").mkdir()
    (work / "plain" / "config.json").write_text("{}")
    refused(_use(command, work / "plain"), capsys, work, "plain", "lmclassify.json")
    refused(_use(command, work / "good.csv"), capsys, work, "good.csv")


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_weights_only_as_pickle_are_refused(work, capsys, model_dir, command):
    """A pytorch_model.bin is a pickle, which can run code: only safetensors are loaded."""
    import torch
    from safetensors.torch import load_file

    d = work / "model"
    shutil.copytree(model_dir, d)
    torch.save(load_file(str(d / "model.safetensors")), d / "pytorch_model.bin")
    (d / "model.safetensors").unlink()
    refused(_use(command, d), capsys, work, "model.safetensors")


def test_a_base_model_without_safetensors_is_refused_at_train_time(work, capsys, tiny_bert_dir):
    import torch
    from safetensors.torch import load_file

    base = work / "base"
    shutil.copytree(tiny_bert_dir, base)
    torch.save(load_file(str(base / "model.safetensors")), base / "pytorch_model.bin")
    (base / "model.safetensors").unlink()
    refused(["train", "--data", "good.csv", "--model", str(base), "-o", "out", "--epochs", "1"], capsys, work,
            str(base), "safetensors")


@pytest.mark.parametrize("how", ["garbled", "not an object"])
def test_a_base_model_with_a_broken_config_is_refused_at_train_time(work, capsys, tiny_bert_dir, how):
    base = work / "base"
    shutil.copytree(tiny_bert_dir, base)
    (TAMPER.get(how) or _not_an_object)(base / "config.json")
    refused(["train", "--data", "good.csv", "--model", str(base), "-o", "out", "--epochs", "1"], capsys, work,
            "config.json")


def test_trust_remote_code_is_never_enabled():
    hits = [f"{p}:{n}" for p in SRC.rglob("*.py") for n, line in enumerate(p.read_text().splitlines(), 1)
            if re.search(r"trust_remote_code\s*=\s*(True|1|[a-z_]+)", line)
            and not re.search(r"trust_remote_code\s*=\s*False", line)]
    assert not hits, hits


def _weight_loads_without_safetensors() -> list[str]:
    """``AutoModel*.from_pretrained(...)`` calls in src/ that do not pass use_safetensors=True
    (reading a GGUF file, which is not a pickle, is fine)."""
    import ast

    out = []
    for p in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "from_pretrained" and isinstance(node.func.value, ast.Name)
                    and node.func.value.id.startswith("AutoModel")):
                kw = {k.arg: k.value for k in node.keywords}
                safe = isinstance(kw.get("use_safetensors"), ast.Constant) and kw["use_safetensors"].value is True
                if not safe and "gguf_file" not in kw:
                    out.append(f"{p.relative_to(SRC)}:{node.lineno}")
    return out


def test_weights_are_loaded_with_use_safetensors():
    """Every from_pretrained that loads weights (training, predict, evaluate, zero-shot)
    asks for safetensors only."""
    assert not _weight_loads_without_safetensors()


# --- data for a trained model ----------------------------------------------------------------

EVAL_DATA = [
    ("missing file", "nope.csv", ["nope.csv", "no such file"]),
    ("directory", "folder", ["folder", "is a directory"]),
    ("header only", "header.csv", ["header.csv", "no data rows"]),
    ("empty text", "empty_text.csv", ["empty_text.csv", "line 3", "'text'"]),
    ("empty label", "empty_label.csv", ["empty_label.csv", "line 3", "'label'"]),
    ("undecodable", "undecodable.csv", ["undecodable.csv", "line 3"]),
    ("missing column", "columns.csv", ["columns.csv", "'label'", "'text', 'category'"]),
    ("not parquet", "not.parquet", ["not.parquet"]),
    ("malformed jsonl", "malformed.jsonl", ["malformed.jsonl", "line 2"]),
    ("unseen label", "unseen.csv", ["unseen.csv", "'c'"]),
]


@pytest.mark.parametrize("data,expect", [pytest.param(d, e, id=i) for i, d, e in EVAL_DATA])
def test_bad_evaluation_data(work, capsys, model_dir, data, expect):
    _write_data(work)
    refused(["evaluate", str(model_dir), "--data", data, "--device", "cpu"], capsys, work, *expect)


PREDICT_DATA = [
    ("missing file", ["--input", "nope.csv"], ["nope.csv", "no such file"]),
    ("directory", ["--input", "folder"], ["folder", "is a directory"]),
    ("empty file", ["--input", "empty.csv"], ["empty.csv", "empty"]),
    ("header only", ["--input", "header.csv"], ["header.csv", "no data rows"]),
    ("undecodable", ["--input", "undecodable.csv"], ["undecodable.csv", "line 3"]),
    ("missing column", ["--input", "columns.csv", "--text-column", "body"], ["columns.csv", "'body'"]),
    ("not parquet", ["--input", "not.parquet"], ["not.parquet"]),
    ("malformed jsonl", ["--input", "malformed.jsonl"], ["malformed.jsonl", "line 2"]),
]


@pytest.mark.parametrize("opts,expect", [pytest.param(o, e, id=i) for i, o, e in PREDICT_DATA])
def test_bad_prediction_input(work, capsys, model_dir, opts, expect):
    _write_data(work)
    refused(["predict", str(model_dir), *opts, "--device", "cpu"], capsys, work, *expect)


def test_undecodable_stdin_names_the_line(work, capsys, model_dir, monkeypatch):
    refused(["predict", str(model_dir), "--input", "-", "--device", "cpu"], capsys, work, "standard input",
            "line 2", stdin=b"fine\nbr\xffoken\n", monkeypatch=monkeypatch)


def test_prediction_keeps_empty_texts(work, capsys, model_dir):
    """Labels need a text to be learned from; a prediction file may hold empty rows and
    must get one answer per row, in order."""
    import json

    _write_data(work)
    capsys.readouterr()
    assert main(["predict", str(model_dir), "--input", "empty_text.csv", "--device", "cpu"]) == 0
    records = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(records) == 3 and all(r["label"] in ("a", "b") for r in records)


# --- outputs ---------------------------------------------------------------------------------

def test_train_output_that_is_a_file(work, capsys):
    (work / "out").write_text("mine")
    refused(["train", "--data", "good.csv", "--model", str(work / "no-such-model"), "-o", "out"], capsys, work,
            "out", "file")


def test_train_output_under_a_file(work, capsys):
    (work / "somefile").write_text("mine")
    refused(["train", "--data", "good.csv", "--model", str(work / "no-such-model"), "-o", "somefile/out"], capsys,
            work, "somefile")


def test_train_output_in_a_read_only_directory(work, capsys):
    ro = work / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: permissions do not stop writing (see test_train_output_under_a_file)")
        refused(["train", "--data", "good.csv", "--model", str(work / "no-such-model"), "-o", "ro/out"], capsys,
                work, "ro")
    finally:
        ro.chmod(0o700)


def test_train_existing_output_without_overwrite_is_untouched(work, capsys):
    (work / "out").mkdir()
    (work / "out" / "keep.txt").write_text("mine")
    refused(["train", "--data", "good.csv", "--model", str(work / "no-such-model"), "-o", "out"], capsys, work,
            "out", "--overwrite")


def test_train_existing_model_is_untouched_when_the_new_run_fails(work, capsys, model_dir):
    """--overwrite replaces an existing model only once the new one is complete."""
    shutil.copytree(model_dir, work / "out")
    _write_data(work)
    refused(["train", "--data", "empty_label.csv", "--model", str(work / "no-such-model"), "-o", "out",
             "--overwrite"], capsys, work, "empty_label.csv")
    refused(["train", "--data", "good.csv", "--model", str(work / "no-such-model"), "-o", "out", "--overwrite"],
            capsys, work, "no-such-model")


def test_predict_output_that_exists_is_untouched(work, capsys, model_dir):
    (work / "p.jsonl").write_text("mine\n")
    refused(["predict", str(model_dir), "--text", "hi", "-o", "p.jsonl"], capsys, work, "p.jsonl", "--overwrite")


def test_predict_output_in_a_missing_folder(work, capsys, model_dir):
    refused(["predict", str(model_dir), "--text", "hi", "-o", "missing/p.jsonl"], capsys, work, "missing")


def test_evaluate_output_in_a_missing_folder(work, capsys, model_dir):
    refused(["evaluate", str(model_dir), "--data", "good.csv", "-o", "missing/m.json"], capsys, work, "missing")


def test_evaluate_output_that_exists_is_untouched(work, capsys, model_dir):
    (work / "m.json").write_text("{}\n")
    refused(["evaluate", str(model_dir), "--data", "good.csv", "-o", "m.json"], capsys, work, "m.json",
            "--overwrite")
