"""The real CLI end to end on a tiny random GPT-2 and a slice of the real SMS data:
train -> predict -> plain transformers pipeline; and every bad input is one clean line."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lmclassify.cli import main


def _sms_csv(sms_file: Path, out: Path, n: int = 160) -> Path:
    import csv

    rows = [line.rstrip("\n").split("\t", 1) for line in sms_file.read_text(encoding="utf-8").splitlines()]
    spam = [r for r in rows if r[0] == "spam"][: n // 2]
    ham = [r for r in rows if r[0] == "ham"][: n // 2]
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for label, text in spam + ham:
            w.writerow([text, label])
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_gpt2_dir, sms_file):
    d = tmp_path_factory.mktemp("cli")
    data = _sms_csv(sms_file, d / "sms.csv")
    out = d / "model"
    rc = main(["train", "--data", str(data), "--model", str(tiny_gpt2_dir), "--output", str(out),
               "--epochs", "2", "--batch-size", "8", "--learning-rate", "1e-3", "--seed", "7"])
    assert rc == 0
    return out, data


def test_train_writes_a_complete_model_directory(trained):
    out, _ = trained
    for name in ("config.json", "model.safetensors", "tokenizer.json", "metrics.json", "metrics.jsonl",
                 "report.md", "training_config.json", "loss.png", "accuracy.png", "confusion_matrix.png",
                 "lmclassify.json"):
        assert (out / name).is_file(), name
    m = json.loads((out / "metrics.json").read_text())
    for split in ("train", "validation", "test"):
        assert {"loss", "accuracy", "f1_macro"} <= set(m[split])
    assert m["train_seconds"] > 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["id2label"] == {"0": "ham", "1": "spam"} and cfg["label2id"] == {"ham": 0, "spam": 1}
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    log = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1.0, 2.0] and all("val_loss" in r for r in log)
    assert not list(out.parent.glob("model.partial*"))


def test_plain_transformers_pipeline_classifies_like_lmclassify(trained):
    """No lmclassify import in the child: the directory stands on its own."""
    out, data = trained
    code = (
        "import json,sys; from transformers import pipeline; "
        f"p = pipeline('text-classification', model={str(out)!r}, device='cpu'); "
        "texts = json.load(sys.stdin); "
        "print(json.dumps([[r['label'], r['score']] for r in p(texts, truncation=True)]))"
    )
    from lmclassify import TextClassifier

    texts = ["WINNER!! You have been selected to receive a £900 prize reward!", "Ok lar... Joking wif u oni",
             "Free entry in 2 a wkly comp", "I'll call you later tonight", "x"]
    proc = subprocess.run([sys.executable, "-c", code], input=json.dumps(texts), capture_output=True, text=True,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    theirs = json.loads(proc.stdout.strip().splitlines()[-1])
    clf = TextClassifier.load(out, device="cpu")
    ours = clf.predict_proba(texts)
    assert [lab for lab, _ in theirs] == clf.predict(texts)
    for (lab, score), p in zip(theirs, ours):
        assert abs(score - p.max()) < 1e-4


def test_predict_from_text_file_and_stdin(trained, tmp_path, capsys, monkeypatch):
    import io

    out, data = trained
    assert main(["predict", str(out), "--text", "Free prize! call now", "--text", "see you at lunch"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 and set(rows[0]["probabilities"]) == {"ham", "spam"}
    assert abs(sum(rows[0]["probabilities"].values()) - 1) < 1e-5
    assert main(["predict", str(out), "--input", str(data), "--output", str(tmp_path / "p.csv")]) == 0
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0] == "text,label,score,p_ham,p_spam" and len(lines) > 100
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello there\n\nwin cash now\n"))
    assert main(["predict", str(out), "--input", "-"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    # an existing output file is not overwritten silently
    assert main(["predict", str(out), "--text", "x", "--output", str(tmp_path / "p.csv")]) == 2


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lmclassify", *args], capture_output=True, text=True, timeout=300,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "LMCLASSIFY_CACHE": "/tmp/lmc-test-cache"})


def _bad(tmp_path: Path, name: str, content: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(content)
    return p


@pytest.mark.parametrize("case,expect", [
    ("missing_file", "no such file"),
    ("missing_column", "no column 'label'"),
    ("empty", "no data rows"),
    ("single_class", "only one class"),
    ("undecodable", "not UTF-8"),
    ("unknown_model", "unknown model"),
    ("hub_id_offline", "not reachable"),
    ("existing_output", "exists; pass --overwrite"),
])
def test_bad_input_is_one_line_and_leaves_no_output(tmp_path, tiny_gpt2_dir, case, expect):
    good = _bad(tmp_path, "good.csv", b"text,label\n" + b"".join(b"text %d,%s\n" % (i, b"ab"[i % 2:i % 2 + 1])
                                                                for i in range(20)))
    data = {
        "missing_file": tmp_path / "nope.csv",
        "missing_column": _bad(tmp_path, "c.csv", b"text,category\nhello,a\nbye,b\n"),
        "empty": _bad(tmp_path, "e.csv", b"text,label\n"),
        "single_class": _bad(tmp_path, "s.csv", b"text,label\nhello,a\nbye,a\nhi,a\nyo,a\n"),
        "undecodable": _bad(tmp_path, "u.csv", b"text,label\nh\xffllo,a\nbye,b\n"),
    }.get(case, good)
    model = {"unknown_model": "no-such-model", "hub_id_offline": "someorg/some-model"}.get(case, str(tiny_gpt2_dir))
    out = tmp_path / "out"
    if case == "existing_output":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    proc = _run_cli("train", "--data", str(data), "--model", model, "--output", str(out), "--epochs", "1")
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lmclassify: error:") and expect in err[0], proc.stderr
    assert "Traceback" not in proc.stderr
    if case == "existing_output":
        assert (out / "keep.txt").read_text() == "mine"
    else:
        assert not out.exists()
    assert not list(tmp_path.glob("out.partial*"))


def test_evaluate_fp32_and_int8_on_gpt2_conv1d_blocks(trained, tmp_path):
    out, data = trained
    assert main(["evaluate", str(out), "--data", str(data), "--output", str(tmp_path / "m.json")]) == 0
    full = json.loads((tmp_path / "m.json").read_text())
    import csv

    import lmclassify

    rows = list(csv.DictReader(open(data, encoding="utf-8")))
    predicted = lmclassify.load(out, device="cpu").predict([r["text"] for r in rows])
    by_hand = sum(p == r["label"] for p, r in zip(predicted, rows)) / len(rows)
    assert full["n"] == 160 and full["accuracy"] == pytest.approx(by_hand)  # evaluate scores what predict says
    assert sum(map(sum, full["confusion_matrix"])) == 160
    # GPT-2's blocks are transformers Conv1D, not nn.Linear: int8 must cover them too
    assert main(["evaluate", str(out), "--data", str(data), "--quantize", "int8",
                 "--output", str(tmp_path / "q.json")]) == 0
    q = json.loads((tmp_path / "q.json").read_text())
    assert q["n"] == 160 and abs(q["accuracy"] - full["accuracy"]) <= 0.05


@pytest.mark.parametrize("kernel", ["int_mm", "fbgemm"])
@pytest.mark.parametrize("fixture", ["tiny_llama_dir", "tiny_bert_dir", "tiny_gpt2_dir"])
def test_int8_replaces_every_layer_but_the_head(request, fixture, kernel, tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("LMCLASSIFY_INT8_KERNEL", kernel)

    from lmclassify import LmClassifyError, TextClassifier
    from lmclassify.models.int8 import Int8Linear

    clf = TextClassifier(str(request.getfixturevalue(fixture)), epochs=1, batch_size=8, progress=False,
                         device="cpu")
    texts, labels = ["good film", "bad film", "great fun", "awful"] * 4, ["pos", "neg", "pos", "neg"] * 4
    clf.fit(texts, labels)
    before = clf.predict_proba(texts)
    clf.quantize("int8")
    left = [n for n, m in clf.module_.named_modules()
            if isinstance(m, torch.nn.Linear) and m is not clf.module_.head or type(m).__name__ == "Conv1D"]
    assert left == []
    int8 = {n: m for n, m in clf.module_.named_modules() if isinstance(m, Int8Linear)}
    assert int8 and type(clf.module_.head) is torch.nn.Linear  # the head stays exact
    assert {m.kernel for m in int8.values()} == {kernel} and clf.int8_kernel_.kernel == kernel
    # only the MLP output projections (inner width -> hidden) keep exact outlier rows
    exact = sorted(n for n, m in int8.items() if m.weight_fp32 is not None)
    suffix = {"tiny_llama_dir": "mlp.down_proj", "tiny_bert_dir": "output.dense", "tiny_gpt2_dir": "mlp.c_proj"}
    assert len(exact) == clf.module_.backbone.n_layers
    assert all(n.endswith(suffix[fixture]) and "attention" not in n for n in exact)
    # every block's layers compute their largest input columns in fp32 (found on the
    # calibration texts); only transformers' own head, unused beside ours, has none
    without = sorted(n for n, m in int8.items() if m.columns is None)
    assert without == (["hf.classifier"] if fixture == "tiny_bert_dir" else [])
    after = clf.predict_proba(texts)
    assert abs(after - before).max() < 0.05
    assert (clf.quantize("int8").predict_proba(texts) == after).all()  # quantizing twice changes nothing
    with pytest.raises(LmClassifyError, match="inference only"):
        clf.save(tmp_path / "q")
    assert not (tmp_path / "q").exists()


def test_int8_gives_near_ties_a_second_look_in_fp32(tiny_llama_dir, monkeypatch):
    """Texts whose top-two margin int8 leaves within ``recheck_margin_`` run in the kept fp32
    network: with a margin nothing escapes, int8 answers exactly as fp32; recheck=False keeps none."""
    import torch

    from lmclassify import TextClassifier

    monkeypatch.setenv("LMCLASSIFY_INT8_KERNEL", "int_mm")
    texts, labels = ["good film", "bad film", "great fun", "awful", "so so", "meh"] * 3, ["p", "n", "p"] * 6
    clf = TextClassifier(str(tiny_llama_dir), epochs=1, batch_size=8, progress=False, device="cpu")
    clf.fit(texts, labels)
    fp32 = clf.decision_function(texts)
    plain = TextClassifier(str(tiny_llama_dir), epochs=1, batch_size=8, progress=False, device="cpu")
    plain.fit(texts, labels)
    plain.quantize("int8", recheck=False)
    assert plain.quantized_ == "int8" and not hasattr(plain, "exact_module_")
    clf.quantize("int8")
    assert clf.quantized_ == "int8" and 0 < clf.recheck_margin_ < float("inf")
    assert all(type(m) is torch.nn.Linear for m in clf.exact_module_.modules() if "Linear" in type(m).__name__)
    calls = []
    real = clf.task_.margins
    monkeypatch.setattr(clf.task_, "margins", lambda logits: calls.append(1) or real(logits))
    clf.recheck_margin_ = float("inf")  # every text is a near-tie: all of them run in fp32
    assert torch.allclose(clf.decision_function(texts), fp32, atol=1e-5) and calls
    clf.recheck_margin_ = 0.0  # none is: the int8 network answers alone
    assert not torch.allclose(clf.decision_function(texts), fp32, atol=1e-5)


def test_int8_stays_fp32_with_one_line_when_no_kernel_wins(tiny_bert_dir, monkeypatch):
    from lmclassify import TextClassifier

    clf = TextClassifier(str(tiny_bert_dir), epochs=1, batch_size=8, progress=False, device="cpu")
    texts, labels = ["good film", "bad film"] * 4, ["pos", "neg"] * 4
    clf.fit(texts, labels)
    before = clf.predict_proba(texts)
    monkeypatch.setenv("LMCLASSIFY_INT8_KERNEL", "fp32")
    with pytest.warns(UserWarning, match="int8: keeping fp32") as caught:
        clf.quantize("int8")
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    assert clf.quantized_ is None and (clf.predict_proba(texts) == before).all()


@pytest.mark.parametrize("fixture", ["tiny_llama_dir", "tiny_bert_dir", "tiny_gpt2_dir"])
def test_bf16_runs_every_layer_but_the_head_in_bf16(request, fixture, tmp_path, monkeypatch):
    """--quantize bf16 (forced here: this CPU may lack native bf16): bf16 weights in every
    linear layer but the head, run under CPU autocast, close to fp32; one precision per model."""
    import torch

    from lmclassify import LmClassifyError, TextClassifier
    from lmclassify.cli import main

    monkeypatch.setenv("LMCLASSIFY_BF16", "bf16")
    clf = TextClassifier(str(request.getfixturevalue(fixture)), epochs=1, batch_size=8, progress=False,
                         device="cpu")
    texts, labels = ["good film", "bad film", "great fun", "awful"] * 4, ["pos", "neg", "pos", "neg"] * 4
    clf.fit(texts, labels)
    before = clf.predict_proba(texts)
    assert clf.quantize("bf16") is clf and clf.quantized_ == "bf16" and clf.bf16_choice_.kernel == "bf16"
    head = {id(p) for p in clf.module_.head.parameters()}
    dtypes = {p.dtype for p in clf.module_.parameters() if id(p) not in head and p.ndim == 2
              and p.shape[0] != clf.module_.hf.config.vocab_size}  # embeddings and tables stay fp32
    assert torch.bfloat16 in dtypes
    assert all(p.dtype == torch.float32 for p in clf.module_.head.parameters())
    after = clf.predict_proba(texts)
    assert after.dtype == before.dtype and abs(after - before).max() < 0.05
    assert (clf.quantize("bf16").predict_proba(texts) == after).all()
    from lmclassify.serve.schemas import describe

    info = describe("m", clf)  # GET /v1/models says what runs
    assert info["quantize"] == "bf16" and info["int8_kernel"] is None
    with pytest.raises(LmClassifyError, match="already runs in bf16"):
        clf.quantize("int8")
    with pytest.raises(LmClassifyError, match="bf16 model is for inference only"):
        clf.save(tmp_path / "q")
    clf2 = TextClassifier(str(request.getfixturevalue(fixture)), epochs=1, batch_size=8, progress=False,
                          device="cpu").fit(texts, labels)
    out = tmp_path / "m"
    clf2.save(out)
    assert main(["evaluate", str(out), "--data", str(_texts_csv(tmp_path, texts, labels)), "--quantize", "bf16",
                 "--output", str(tmp_path / "b.json")]) == 0
    assert json.loads((tmp_path / "b.json").read_text())["n"] == len(texts)


def _texts_csv(tmp_path, texts, labels):
    path = tmp_path / "d.csv"
    path.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in zip(texts, labels)), encoding="utf-8")
    return path


def test_bf16_stays_fp32_with_one_line_where_the_cpu_lacks_it(tiny_bert_dir, monkeypatch):
    from lmclassify import TextClassifier
    from lmclassify.models import bf16, kernel_choice

    clf = TextClassifier(str(tiny_bert_dir), epochs=1, batch_size=8, progress=False, device="cpu")
    texts, labels = ["good film", "bad film"] * 4, ["pos", "neg"] * 4
    clf.fit(texts, labels)
    before = clf.predict_proba(texts)
    monkeypatch.delenv("LMCLASSIFY_BF16", raising=False)
    info = bf16.machine_info()
    monkeypatch.setattr(bf16, "machine_info", lambda: {**info, "flags": ["avx2"]})
    monkeypatch.setattr(kernel_choice, "time_kernels", lambda *a, **k: pytest.fail("a CPU without bf16 is not timed"))
    with pytest.warns(UserWarning, match="bf16: keeping fp32") as caught:
        clf.quantize("bf16")
    assert len(caught) == 1 and "\n" not in str(caught[0].message) and "amx_bf16" in str(caught[0].message)
    assert clf.quantized_ is None and (clf.predict_proba(texts) == before).all()


def test_zero_shot_scores_next_token_probabilities(tiny_llama_dir):
    """The batched, padded scorer equals transformers' own next-token log-softmax."""
    import torch
    from transformers import AutoModelForCausalLM

    from lmclassify.inference.zero_shot import ZeroShot

    zs = ZeroShot(str(tiny_llama_dir))
    prompts = ["Is this spam? yes or no", "hello", "a much longer prompt with many more words in it"]
    cand = [zs._first_token("yes"), zs._first_token("no")]
    got = zs.next_token_logprobs(prompts, cand, batch_size=2)
    lm = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    for p, row in zip(prompts, got):
        ids = zs.tok(p, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            ref = lm(ids).logits[0, -1].log_softmax(-1)[cand]
        assert torch.allclose(torch.tensor(row), ref, atol=1e-4)
    labels = zs.predict(["win a prize", "see you soon"], ["ham", "spam"], positive="spam")
    assert set(labels) <= {0, 1} and len(labels) == 2


def test_zero_shot_cli_on_a_labelled_file(tiny_llama_dir, trained, tmp_path, capsys):
    _, data = trained
    assert main(["zero-shot", "--data", str(data), "--model", str(tiny_llama_dir), "--limit", "10",
                 "--positive-label", "spam", "--output", str(tmp_path / "z.json")]) == 0
    z = json.loads((tmp_path / "z.json").read_text())["test"]
    assert z["n"] == 10 and "zero-shot" in capsys.readouterr().out
