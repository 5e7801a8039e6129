"""Token classification end to end through the one pipeline's real CLI, on a tiny random BERT
and a real slice of wnut17 (softmax with class weights, and a CRF): `lmclassify train` on
CoNLL files -> `evaluate` -> `predict` (and the *-tokens aliases); the saved config re-runs
to the same metrics; `lmclassify.load`/``TokenClassifier`` save/load round trips; plain
transformers reads a softmax directory and refuses a sealed one; bad input is one line,
exit status 2, and leaves nothing behind."""
from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import lmclassify
from lmclassify import TokenClassifier
from lmclassify.cli import build_parser, main
from lmclassify.data.conll import read_conll, tag_set


pytestmark = pytest.mark.one_thread  # tiny models: a 2-thread pool only adds waiting (conftest.py)


WNUT = Path(os.environ.get("LMCLASSIFY_DATA") or Path(__file__).parents[1] / ".." / "shared" / "data") / "wnut17"
EPOCHS = 6


def _write(path: Path, tokens, tags) -> Path:
    path.write_text("\n\n".join("\n".join(f"{w}\t{t}" for w, t in zip(ws, ts)) for ws, ts in zip(tokens, tags)) + "\n",
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """100 wnut17 training sentences; 40 dev sentences whose tags all occur in them."""
    if not (WNUT / "wnut17train.conll").is_file():
        pytest.skip(f"wnut17 not found under {WNUT.parent}")
    d = tmp_path_factory.mktemp("wnut-slice")
    train = read_conll(WNUT / "wnut17train.conll").subset(range(100))
    known = set(tag_set(train.tags))
    dev = read_conll(WNUT / "emerging.dev.conll")
    keep = [i for i in range(len(dev)) if set(dev.tags[i]) <= known][:40]
    dev = dev.subset(keep)
    return SimpleNamespace(train_file=_write(d / "train.conll", train.tokens, train.tags),
                           dev_file=_write(d / "dev.conll", dev.tokens, dev.tags), train=train, dev=dev)


def _train_args(data, model_dir: Path, out: Path, crf: bool) -> list[str]:
    # A random 3-layer BERT on 100 tweets (95 % of words O) sits on the all-O plateau for
    # many epochs at BERT-like settings (a plain transformers loop too). Every block, a
    # high constant rate and the last epoch's weights make it fit the training entities
    # (entity F1 ~0.8 on train) in a few seconds: the softmax head with inverse-frequency
    # class weights, the CRF (which cannot take class weights) with its sentence likelihood.
    return (["train", "--train", str(data.train_file), "--validation", str(data.dev_file), "--test",
             str(data.dev_file), "--model", str(model_dir), "--output", str(out), "--epochs", str(EPOCHS),
             "--batch-size", "8", "--lr", "4e-3", "--schedule", "constant", "--train-layers", "all",
             "--no-keep-best", "--seed", "7"] + (["--crf"] if crf else ["--class-weights", "auto"]))


@pytest.fixture(scope="module", params=[False, True], ids=["softmax", "crf"])
def trained(request, data, tiny_bert_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ner") / "model"
    assert main(_train_args(data, tiny_bert_dir, out, request.param)) == 0
    return out, request.param


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_train_writes_a_complete_token_directory(trained, data):
    out, crf = trained
    for name in ("config.json", "model.safetensors", "tokenizer.json", "metrics.json", "metrics.jsonl", "report.md",
                 "training_config.json", "lmclassify.json", "loss.png"):
        assert (out / name).is_file(), name
    assert (out / "lmclassify_extra.safetensors").is_file() == crf  # the CRF transitions; a linear head is HF's own
    m = json.loads((out / "metrics.json").read_text())
    assert m["task"] == "token"
    for split in ("train", "validation", "test"):
        keys = {"entity_f1", "entity_precision", "entity_recall", "token_accuracy", "loss", "per_class", "n_predicted"}
        assert keys <= set(m[split])
        assert 0.0 <= m[split]["entity_f1"] <= 1.0
    assert m["test"]["n"] == 40 and m["train"]["n"] == 100
    assert m["train"]["n_entities"] == sum(t.startswith("B-") for s in data.train.tags for t in s)
    # It learned the training entities: ~0.8 entity F1 on train. An all-O tagger (the
    # plateau; token accuracy 0.954 here, which passed the old `> 0.5`) scores 0; untrained,
    # the softmax head scores 0.01 (it tags 1718 of 1929 words) and the CRF tags all O.
    all_o = sum(t == "O" for s in data.train.tags for t in s) / sum(len(s) for s in data.train.tags)
    assert m["train"]["n_predicted"] > 0 and m["train"]["entity_recall"] > 0.3, m["train"]
    assert m["train"]["entity_f1"] > 0.5, (m["train"], all_o)
    log = _rows(out / "metrics.jsonl")
    assert [r["epoch"] for r in log] == [float(e) for e in range(1, EPOCHS + 1)]
    assert all({"val_f1_macro", "val_entity_f1", "val_loss"} <= set(r) for r in log)
    meta = json.loads((out / "lmclassify.json").read_text())
    assert meta["format"] == 2 and meta["task"] == "token_classification"
    assert meta["labels"] == {"classes": tag_set(data.train.tags), "type": "str"} and meta["labels"]["classes"][0] == "O"
    assert meta["transformers_compatible"] == (not crf) and meta["own_head"] is False
    assert ("class_weights" in meta["task_state"]) == (not crf)
    assert len(meta["task_state"].get("class_weights", meta["labels"]["classes"])) == len(meta["labels"]["classes"])
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["BertForTokenClassification"] and cfg["id2label"]["0"] == "O"
    assert (cfg["model_type"] == "lmclassify") == crf  # a CRF directory is sealed
    if crf:
        assert cfg["lmclassify_model_type"] == "bert" and "CRF" in cfg["lmclassify_sealed"]
        assert "lmclassify" in meta["notes"][0] and "CRF" in meta["notes"][0]

    from lmclassify import RunConfig

    run = RunConfig.load(out / "training_config.json")  # the resolved run config, every option filled
    assert run.model.crf == crf and run.model.head == "linear" and run.model.name == meta["base_model"]
    assert run.model.max_length == 128 and run.train.weight_decay == 0.01 and run.train.warmup_ratio == 0.1  # family
    assert (run.train.epochs, run.train.batch_size, run.train.learning_rate) == (EPOCHS, 8, 4e-3)  # given
    assert run.train.monitor == "val_loss" and run.train.keep_best is False
    assert run.train.class_weights == (None if crf else "auto")
    assert run.data.train == str(data.train_file.resolve())
    report = (out / "report.md").read_text()
    assert "entity_f1" in report and ("CRF" in report) == crf


def test_saved_config_reruns_to_the_same_metrics(trained, tmp_path, capsys):
    """`lmclassify train --config OUT/training_config.json -o OTHER` redoes the run."""
    out, _ = trained
    again = tmp_path / "again"
    assert main(["train", "--config", str(out / "training_config.json"), "--output", str(again)]) == 0
    assert "training took" in capsys.readouterr().out
    assert json.loads((again / "training_config.json").read_text()) == json.loads((out / "training_config.json").read_text())
    assert json.loads((again / "lmclassify.json").read_text()) == json.loads((out / "lmclassify.json").read_text())
    ref, got = (json.loads((d / "metrics.json").read_text()) for d in (out, again))
    for split in ("train", "validation", "test"):
        for k in ("entity_f1", "entity_precision", "entity_recall", "token_accuracy", "loss"):
            assert got[split][k] == pytest.approx(ref[split][k], abs=1e-5), (split, k)
        assert got[split]["n_predicted"] == ref[split]["n_predicted"], split
    assert (got["steps"], got["best_step"]) == (ref["steps"], ref["best_step"])


def _easy_entities(n: int, seed: int):
    """Sentences where a few fixed words are always entities: learnable in a few epochs."""
    import random

    rnd = random.Random(seed)
    words, ents = ["the", "we", "went", "to", "see", "a", "big", "old", "house", "today"], \
        {"Paris": "location", "London": "location", "Obama": "person", "Merkel": "person"}
    tokens, tags = [], []
    for _ in range(n):
        ws = rnd.choices(words, k=6)
        name = rnd.choice(sorted(ents))
        at = rnd.randrange(len(ws) + 1)
        tokens.append(ws[:at] + [name] + ws[at:])
        tags.append(["O"] * at + [f"B-{ents[name]}"] + ["O"] * (len(ws) - at))
    return tokens, tags


def test_best_weights_by_entity_f1(tiny_bert_dir, tmp_path):
    """--monitor val_entity_f1 keeps the evaluation with the highest entity F1, and the
    saved validation metrics are those of the kept weights."""
    train = _write(tmp_path / "train.conll", *_easy_entities(160, 1))
    dev = _write(tmp_path / "dev.conll", *_easy_entities(40, 2))
    out = tmp_path / "m"
    assert main(["train", "--train", str(train), "--validation", str(dev), "--model", str(tiny_bert_dir),
                 "--output", str(out), "--epochs", "5", "--batch-size", "8", "--lr", "2e-2", "--seed", "7",
                 "--train-layers", "all", "--monitor", "val_entity_f1"]) == 0
    log = _rows(out / "metrics.jsonl")
    m = json.loads((out / "metrics.json").read_text())
    scores = [r["val_entity_f1"] for r in log]
    best = log[scores.index(max(scores))]  # the first of equal scores: later ones are no improvement
    assert best["val_entity_f1"] > 0.5  # it learns the entities
    assert best["step"] != min(log, key=lambda r: r["val_loss"])["step"]  # val_loss would keep other weights
    assert m["best_step"] == best["step"]
    assert m["validation"]["entity_f1"] == pytest.approx(best["val_entity_f1"], abs=1e-6)
    assert m["validation"]["loss"] == pytest.approx(best["val_loss"], rel=1e-4)


def test_evaluate_reproduces_the_saved_metrics(trained, data, tmp_path, capsys):
    out, _ = trained
    ref = json.loads((out / "metrics.json").read_text())
    for cmd, file, split in (("evaluate", data.dev_file, "test"), ("evaluate-tokens", data.train_file, "train")):
        dest = tmp_path / f"{split}.json"
        assert main([cmd, str(out), "--data", str(file), "-o", str(dest)]) == 0
        got = json.loads(dest.read_text())
        for k in ("entity_f1", "entity_precision", "entity_recall", "token_accuracy", "loss"):
            assert got[k] == pytest.approx(ref[split][k], abs=1e-5), (cmd, k)
        assert (got["n"], got["n_predicted"]) == (ref[split]["n"], ref[split]["n_predicted"])
        assert "entity_f1" in capsys.readouterr().out  # the headline


def test_evaluate_int8(trained, data, tmp_path):
    """--quantize int8 works for token models and costs little on this data."""
    out, _ = trained
    assert main(["evaluate", str(out), "--data", str(data.train_file), "--quantize", "int8",
                 "-o", str(tmp_path / "m.json")]) == 0
    got = json.loads((tmp_path / "m.json").read_text())
    ref = json.loads((out / "metrics.json").read_text())["train"]
    assert got["n"] == 100 and abs(got["token_accuracy"] - ref["token_accuracy"]) < 0.05, (got, ref)
    assert got["entity_f1"] > 0.5 * ref["entity_f1"]


def test_predict_gives_offsets_into_the_given_text(trained, data, tmp_path, capsys):
    out, _ = trained
    texts = tmp_path / "in.txt"
    texts.write_text("  Going to   New York tomorrow\n\n" + " ".join(data.dev.tokens[0]) + "\n", encoding="utf-8")
    assert main(["predict", str(out), "--input", str(texts), "-o", str(tmp_path / "p.jsonl")]) == 0
    rows = _rows(tmp_path / "p.jsonl")
    assert len(rows) == 2  # a .txt input's blank lines are skipped, as for every model
    assert rows[0]["tokens"] == ["Going", "to", "New", "York", "tomorrow"] and len(rows[0]["tags"]) == 5
    assert rows[1]["tokens"] == data.dev.tokens[0]
    for r in rows:
        assert set(r) == {"text", "tokens", "tags", "entities"}
        for e in r["entities"]:
            assert r["text"][e["start"]:e["end"]] == e["text"] and 0 < e["score"] <= 1
    assert main(["predict-tokens", str(out), "--conll", str(data.dev_file)]) == 0
    conll_rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(conll_rows) == 40 and conll_rows[0]["tokens"] == data.dev.tokens[0]
    assert conll_rows[0]["tags"] == rows[1]["tags"]  # the same words, as a file line or pre-split
    assert main(["predict", str(out), "--text", "", "--text", "Obama  in Paris"]) == 0
    empty, given = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert empty == {"text": "", "tokens": [], "tags": [], "entities": []}
    assert given["text"] == "Obama  in Paris" and given["tokens"] == ["Obama", "in", "Paris"]


def test_predict_int8_and_the_loader(trained, data, tmp_path):
    """`lmclassify.load` returns a TokenClassifier that predicts what `predict` writes;
    `predict --quantize int8` works for token models and mostly agrees with fp32."""
    out, crf = trained
    clf = lmclassify.load(out, device="cpu")
    assert isinstance(clf, TokenClassifier) and clf.classes_ == tag_set(data.train.tags)
    assert clf.get_params()["crf"] == crf
    assert main(["predict", str(out), "--conll", str(data.train_file), "-o", str(tmp_path / "fp32.jsonl")]) == 0
    fp32 = _rows(tmp_path / "fp32.jsonl")
    assert [r["tags"] for r in fp32] == clf.predict(data.train.tokens)
    assert [r["entities"] for r in fp32] == clf.predict_entities(data.train.tokens)
    assert clf.score(data.train.tokens, data.train.tags) == pytest.approx(
        json.loads((out / "metrics.json").read_text())["train"]["entity_f1"], abs=1e-6)
    assert main(["predict", str(out), "--conll", str(data.train_file), "--quantize", "int8",
                 "-o", str(tmp_path / "int8.jsonl")]) == 0
    int8 = _rows(tmp_path / "int8.jsonl")
    assert [r["tokens"] for r in int8] == data.train.tokens
    same = sum(a == b for x, y in zip(fp32, int8) for a, b in zip(x["tags"], y["tags"]))
    assert same / sum(len(s) for s in data.train.tokens) > 0.95


def test_save_load_round_trip(data, tiny_bert_dir, tmp_path):
    """Every head kind: the loaded model tags, scores and (CRF) transitions as before; the
    directory is transformers-compatible only for the linear head without CRF."""
    sents = data.train.subset(range(40))
    probe = sents.tokens[:10] + ["raw   text here", ""]
    for name, opts in (("linear", {}), ("crf", {"crf": True}), ("mlp", {"head": "mlp"})):
        clf = TokenClassifier(str(tiny_bert_dir), epochs=1, batch_size=8, learning_rate=5e-3, device="cpu",
                              progress=False, **opts)
        assert clf.get_params()["crf"] == bool(opts.get("crf")) and clf.max_length is None  # None: family default
        clf.fit(sents.tokens, sents.tags)
        assert clf.model_config_.max_length == 128 and clf.model_config_.train_layers == 2  # token family defaults
        before = clf.predict_records(probe)
        assert before[-1] == {"text": "", "tokens": [], "tags": [], "entities": []}
        assert before[-2]["tokens"] == ["raw", "text", "here"] and len(before[-2]["tags"]) == 3
        m_before = clf.evaluate(sents.tokens, sents.tags)
        clf.save(tmp_path / name)
        meta = json.loads((tmp_path / name / "lmclassify.json").read_text())
        assert meta["transformers_compatible"] == (name == "linear") and meta["own_head"] == (name == "mlp")
        assert (json.loads((tmp_path / name / "config.json").read_text())["model_type"] == "lmclassify") == \
            (name != "linear")
        for back in (TokenClassifier.load(tmp_path / name, device="cpu"), lmclassify.load(tmp_path / name, device="cpu")):
            assert isinstance(back, TokenClassifier)
            assert back.classes_ == clf.classes_ and back.predict_records(probe) == before
            assert back.configs() == (clf.model_config_, clf.train_config_)  # the resolved options
            assert back.evaluate(sents.tokens, sents.tags)["loss"] == pytest.approx(m_before["loss"], rel=1e-5)
            if name == "crf":
                assert torch.equal(back.module_.crf.transitions.cpu(), clf.module_.crf.transitions.cpu())


def test_decoder_backbone_reads_words_as_running_text(data, tiny_gpt2_dir, tmp_path):
    """GPT-2's byte-level BPE needs a space before every pre-split word; the saved tokenizer keeps it."""
    from transformers import AutoTokenizer

    sents = data.train
    clf = TokenClassifier(str(tiny_gpt2_dir), train_layers=1, epochs=1, batch_size=8, learning_rate=5e-3,
                          device="cpu", progress=False)
    clf.fit(sents.tokens[:20], sents.tags[:20])
    assert clf.feature_cache_ and clf.tokenizer_.add_prefix_space
    ids = clf.tokenizer_(["Hello", "world"], is_split_into_words=True)["input_ids"]
    assert ids == clf.tokenizer_("Hello world")["input_ids"] or ids == clf.tokenizer_(" Hello world")["input_ids"]
    tags = clf.predict(sents.tokens[:5])
    assert [len(t) for t in tags] == [len(s) for s in sents.tokens[:5]]
    assert clf.predict([" ".join(s) for s in sents.tokens[:5]]) == tags  # a text is its whitespace-split words
    clf.save(tmp_path / "g")
    assert AutoTokenizer.from_pretrained(tmp_path / "g").add_prefix_space
    assert lmclassify.load(tmp_path / "g", device="cpu").predict(sents.tokens[:5]) == tags


def _one_pretoken(tok, word: str) -> bool:
    """Whether the tokenizer's pre-tokenizer keeps ``word`` whole. BERT's splits '@user' into
    '@' and 'user', and pipeline's aggregation 'first' then tags 'user' on its own."""
    return len(tok.backend_tokenizer.pre_tokenizer.pre_tokenize_str(word)) == 1


def test_plain_transformers_reads_a_softmax_directory(trained, data, tmp_path):
    """transformers alone gives lmclassify's tag for every word: AutoModelForTokenClassification
    (argmax at each word's first piece) and pipeline(aggregation_strategy="first"). A CRF
    directory is sealed: transformers refuses it with an error naming lmclassify."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    out, crf = trained
    if crf:
        for load in (lambda: AutoModelForTokenClassification.from_pretrained(out),
                     lambda: pipeline("token-classification", model=str(out), aggregation_strategy="first")):
            with pytest.raises((ValueError, KeyError, OSError)) as e:
                load()
            assert "lmclassify" in str(e.value)
        return
    assert main(["predict", str(out), "--conll", str(data.train_file), "-o", str(tmp_path / "p.jsonl")]) == 0
    ours = _rows(tmp_path / "p.jsonl")
    assert sum(bool(r["entities"]) for r in ours) >= 20  # not a vacuous all-O comparison

    tok, model = AutoTokenizer.from_pretrained(out), AutoModelForTokenClassification.from_pretrained(out).eval()
    theirs = []
    for words in data.train.tokens:
        enc = tok(words, is_split_into_words=True, return_tensors="pt", truncation=True)
        with torch.no_grad():
            pred = model(**enc).logits[0].argmax(-1).tolist()
        tags, seen = ["O"] * len(words), set()
        for i, w in enumerate(enc.word_ids()):
            if w is not None and w not in seen:
                seen.add(w)
                tags[w] = model.config.id2label[pred[i]]
        theirs.append(tags)
    assert theirs == [r["tags"] for r in ours]

    # pipeline reads text and finds words itself: give it texts whose words it sees as we do
    texts = [" ".join(w for w in words if _one_pretoken(tok, w)) for words in data.train.tokens]
    (tmp_path / "clean.txt").write_text("\n".join(t for t in texts if t) + "\n", encoding="utf-8")
    assert main(["predict", str(out), "--input", str(tmp_path / "clean.txt"), "-o", str(tmp_path / "c.jsonl")]) == 0
    ner = pipeline("token-classification", model=str(out), aggregation_strategy="first", device="cpu")
    checked = 0
    for r in _rows(tmp_path / "c.jsonl"):
        got = ner(r["text"])
        assert [(g["entity_group"], g["start"], g["end"]) for g in got] == \
            [(e["label"], e["start"], e["end"]) for e in r["entities"]], r["text"]
        checked += bool(r["entities"])
    assert checked >= 20  # sentences with entities were compared


def test_train_tokens_alias_and_token_options(tmp_path):
    """train-tokens/evaluate-tokens/predict-tokens are the same commands; --task token
    reads any file name as CoNLL; the wnut17 recipe fills what is not given."""
    from lmclassify import RunConfig
    from lmclassify.cli import evaluate, predict, train
    from lmclassify.cli.options import config_from_args
    from lmclassify.errors import LmClassifyError
    from lmclassify.jobs.train import resolve, wants_tokens

    parser = build_parser()
    for alias, mod, rest in (("train-tokens", train, ["--train", "t.conll", "--crf", "-o", "x"]),
                             ("evaluate-tokens", evaluate, ["d", "--data", "t.conll"]),
                             ("predict-tokens", predict, ["d", "--conll", "t.conll"])):
        a = parser.parse_args([alias] + rest)
        assert a.func is mod.run, alias
    a = parser.parse_args(["train-tokens", "--train", "t.conll", "--crf", "-o", "x"])
    assert config_from_args(a) == config_from_args(parser.parse_args(["train", "--train", "t.conll", "--crf", "-o", "x"]))

    def cfg(*argv):
        return resolve(config_from_args(parser.parse_args(["train", *argv, "-o", "x"])))

    r = cfg("--recipe", "wnut17", "--epochs", "1", "--crf")
    assert wants_tokens(r) and r.model.name == "minilm-l6" and r.model.crf
    assert (r.train.epochs, r.train.learning_rate, r.train.schedule, r.train.batch_size) == (1, 2e-4, "linear", 16)
    assert (r.model.train_layers, r.model.max_length, r.train.weight_decay, r.train.warmup_ratio) == (2, 128, 0.01, 0.1)
    assert r.train.monitor == "val_entity_f1"  # the recipe's metric keeps the best weights
    assert cfg("--recipe", "wnut17", "--monitor", "val_loss").train.monitor == "val_loss"  # given beats recipe

    plain = cfg("--train", "t.conll")
    assert wants_tokens(plain) and plain.model.name == "minilm-l6"  # CoNLL by suffix; the default encoder
    assert plain.train.monitor is None and plain.train.epochs is None  # filled at fit time (family defaults)
    assert plain.data.train == str(Path("t.conll").resolve())
    assert not wants_tokens(cfg("--train", "t.txt")) and wants_tokens(cfg("--train", "t.txt", "--task", "token"))

    r.save(tmp_path / "c.json")
    assert RunConfig.load(tmp_path / "c.json") == r
    with pytest.raises(LmClassifyError, match="unknown model option"):
        RunConfig.from_dict({"model": {"crff": True}})


def _err(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lmclassify: error: ") and "\n" not in err, err
    return err


def _nothing_left(where: Path, name: str) -> None:
    left = list(where.glob(f".{name}*")) + list(where.glob(f"{name}.partial*"))
    assert not (where / name).exists() and not left, list(where.iterdir())


def _unseen(tmp_path: Path) -> Path:
    return _write(tmp_path / "test.conll", [["Foo", "Bar"]], [["B-spaceship", "I-spaceship"]])


def test_bad_training_input_is_one_line(tmp_path, capsys, data, tiny_bert_dir):
    train = str(data.train_file)
    o = str(tmp_path / "o")
    bad = tmp_path / "bad.conll"
    bad.write_text("Paris\tB-location\nis\tO\n\nno-tag-here\n")
    assert "bad.conll, line 4: token 'no-tag-here' has no tag" in _err(capsys, ["train", "--train", str(bad), "-o", o])
    bad.write_text("Paris\tlocation\n")
    assert "bad.conll, line 1: 'location' is not an IOB tag" in _err(capsys, ["train", "--train", str(bad), "-o", o])
    unseen = _unseen(tmp_path)
    err = _err(capsys, ["train", "--train", train, "--test", str(unseen), "--model", str(tiny_bert_dir), "-o", o])
    assert "test split" in err and "'B-spaceship' (line 1)" in err and "not seen in the training data" in err
    err = _err(capsys, ["train-tokens", "--train", train, "--validation", str(unseen), "--model", str(tiny_bert_dir),
                        "-o", o])
    assert "validation split" in err and "'B-spaceship' (line 1)" in err
    # found only once the network is built: still one line, and no half-written directory
    err = _err(capsys, ["train", "--train", train, "--model", str(tiny_bert_dir), "--crf", "--class-weights", "auto",
                        "--epochs", "1", "-o", o])
    assert "--class-weights" in err and "--crf" in err
    assert "--recipe" in _err(capsys, ["train", "--task", "token", "-o", o])  # no data at all
    _nothing_left(tmp_path, "o")


def test_bad_use_of_a_token_model_is_one_line(tmp_path, capsys, data, trained):
    out, _ = trained
    dev = str(data.dev_file)
    err = _err(capsys, ["evaluate", str(out), "--data", str(_unseen(tmp_path))])
    assert "not seen in the training data" in err and "B-spaceship" in err
    assert "not an lmclassify model directory" in _err(capsys, ["predict", str(tmp_path), "--text", "x"])
    assert "not an lmclassify model directory" in _err(capsys, ["evaluate-tokens", str(tmp_path), "--data", dev])
    assert "JSON Lines" in _err(capsys, ["predict", str(out), "--text", "x", "--format", "csv"])
    assert "JSON Lines" in _err(capsys, ["predict", str(out), "--text", "x", "-o", str(tmp_path / "p.csv")])
    _nothing_left(tmp_path, "p.csv")
    assert "only one of" in _err(capsys, ["predict", str(out), "--text", "x", "--conll", dev])
    assert "no such" in _err(capsys, ["predict", str(out), "--conll", str(tmp_path / "missing.conll")]).lower()


@pytest.mark.slow
def test_minilm_learns_wnut17_entities(data, tmp_path):
    """Real weights: a few hundred sentences and the top two blocks already find entities."""
    train_all = read_conll(WNUT / "wnut17train.conll")
    train = _write(tmp_path / "train.conll", *[x[:600] for x in (train_all.tokens, train_all.tags)])
    assert main(["train", "--train", str(train), "--validation", str(data.dev_file), "--model", "minilm-l6",
                 "--train-layers", "2", "--epochs", "3", "--lr", "3e-4", "--output", str(tmp_path / "m")]) == 0
    m = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert m["validation"]["entity_f1"] > 0.15, m["validation"]
