"""Token classification end to end through the real CLI on a tiny random BERT and a real
slice of wnut17 (with and without the CRF): train-tokens -> evaluate-tokens ->
predict-tokens; save/load round trip; plain transformers reads the directory; bad input
is one line and exit status 2."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from lmclassify.cli import main
from lmclassify.data.conll import read_conll, tag_set

@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread; on a shared CPU a 2-thread pool makes every
    small kernel wait for the other thread (10-50x slower here)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


WNUT = Path(os.environ.get("LMCLASSIFY_DATA") or Path(__file__).parents[1] / ".." / "shared" / "data") / "wnut17"


def _write(path: Path, tokens, tags) -> Path:
    path.write_text("\n\n".join("\n".join(f"{w}\t{t}" for w, t in zip(ws, ts)) for ws, ts in zip(tokens, tags)) + "\n",
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    if not (WNUT / "wnut17train.conll").is_file():
        pytest.skip(f"wnut17 not found under {WNUT.parent}")
    d = tmp_path_factory.mktemp("wnut-slice")
    train = read_conll(WNUT / "wnut17train.conll").subset(range(100))
    known = set(tag_set(train.tags))
    dev = read_conll(WNUT / "emerging.dev.conll")
    keep = [i for i in range(len(dev)) if set(dev.tags[i]) <= known][:40]
    dev = dev.subset(keep)
    return _write(d / "train.conll", train.tokens, train.tags), _write(d / "dev.conll", dev.tokens, dev.tags), dev


@pytest.fixture(scope="module", params=[False, True], ids=["softmax", "crf"])
def trained(request, data, tiny_bert_dir, tmp_path_factory):
    train, dev, _ = data
    out = tmp_path_factory.mktemp("ner") / "model"
    args = ["train-tokens", "--train", str(train), "--validation", str(dev), "--test", str(dev), "--model",
            str(tiny_bert_dir), "--output", str(out), "--epochs", "2", "--batch-size", "8", "--lr", "5e-3",
            "--seed", "7"] + (["--crf"] if request.param else [])
    assert main(args) == 0
    return out, request.param


def test_train_tokens_writes_a_complete_directory(trained):
    out, crf = trained
    for name in ("config.json", "model.safetensors", "tokenizer.json", "metrics.json", "metrics.jsonl", "report.md",
                 "training_config.json", "lmclassify.json", "loss.png"):
        assert (out / name).is_file(), name
    assert (out / "lmclassify_extra.safetensors").is_file() == crf
    m = json.loads((out / "metrics.json").read_text())
    for split in ("train", "validation", "test"):
        keys = {"entity_f1", "entity_precision", "entity_recall", "token_accuracy", "loss", "per_class"}
        assert keys <= set(m[split])
        assert 0.0 <= m[split]["entity_f1"] <= 1.0 and m[split]["token_accuracy"] > 0.5
    assert m["test"]["n"] == 40 and m["train"]["n"] == 100
    log = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1.0, 2.0] and all("val_f1_macro" in r for r in log)
    meta = json.loads((out / "lmclassify.json").read_text())
    assert meta["task"] == "token_classification" and meta["crf"] == crf
    assert meta["transformers_compatible"] == (not crf) and meta["labels"]["classes"][0] == "O"
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["BertForTokenClassification"] and cfg["id2label"]["0"] == "O"
    from lmclassify.training.token_run import TokenRunConfig

    assert TokenRunConfig.load(out / "training_config.json").model.crf == crf
    assert "entity_f1" in (out / "report.md").read_text()


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
    assert main(["train-tokens", "--train", str(train), "--validation", str(dev), "--model", str(tiny_bert_dir),
                 "--output", str(out), "--epochs", "5", "--batch-size", "8", "--lr", "2e-2", "--seed", "7",
                 "--train-layers", "all", "--monitor", "val_entity_f1"]) == 0
    log = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    m = json.loads((out / "metrics.json").read_text())
    scores = [r["val_entity_f1"] for r in log]
    best = log[scores.index(max(scores))]  # the first of equal scores: later ones are no improvement
    assert best["val_entity_f1"] > 0.5  # it learns the entities
    assert best["step"] != min(log, key=lambda r: r["val_loss"])["step"]  # val_loss would keep other weights
    assert m["best_step"] == best["step"]
    assert m["validation"]["entity_f1"] == pytest.approx(best["val_entity_f1"], abs=1e-6)
    assert m["validation"]["loss"] == pytest.approx(best["val_loss"], rel=1e-4)


def test_evaluate_tokens_reproduces_the_test_metrics(trained, data, tmp_path):
    out, _ = trained
    _, dev, _ = data
    assert main(["evaluate-tokens", str(out), "--data", str(dev), "-o", str(tmp_path / "m.json")]) == 0
    got = json.loads((tmp_path / "m.json").read_text())
    ref = json.loads((out / "metrics.json").read_text())["test"]
    for k in ("entity_f1", "entity_precision", "entity_recall", "token_accuracy", "loss"):
        assert got[k] == pytest.approx(ref[k], abs=1e-5), k


def test_predict_tokens_gives_offsets_into_the_given_text(trained, data, tmp_path, capsys):
    out, _ = trained
    _, dev, sents = data
    texts = tmp_path / "in.txt"
    texts.write_text("  Going to   New York tomorrow\n\n" + " ".join(sents.tokens[0]) + "\n", encoding="utf-8")
    assert main(["predict-tokens", str(out), "--input", str(texts), "-o", str(tmp_path / "p.jsonl")]) == 0
    rows = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and rows[1] == {"text": "", "tokens": [], "tags": [], "entities": []}
    assert rows[0]["tokens"] == ["Going", "to", "New", "York", "tomorrow"] and len(rows[0]["tags"]) == 5
    for r in rows:
        for e in r["entities"]:
            assert r["text"][e["start"]:e["end"]] == e["text"] and 0 < e["score"] <= 1
    assert main(["predict-tokens", str(out), "--conll", str(dev)]) == 0
    conll_rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(conll_rows) == 40 and conll_rows[0]["tokens"] == sents.tokens[0]
    assert conll_rows[0]["tags"] == rows[2]["tags"]  # the same words, as a file line or pre-split


def test_save_load_round_trip(data, tiny_bert_dir, tmp_path):
    from lmclassify import TrainConfig
    from lmclassify.token_classifier import TokenClassifier, TokenModelConfig

    _, _, sents = data
    for crf in (False, True):
        clf = TokenClassifier(model_config=TokenModelConfig(str(tiny_bert_dir), crf=crf), progress=False,
                              train_config=TrainConfig(epochs=1, batch_size=8, learning_rate=5e-3, device="cpu"))
        clf.fit(sents.tokens, sents.tags)
        before = clf.annotate(sents.tokens[:10] + ["raw   text here"])
        m_before = clf.evaluate(sents.tokens, sents.tags)
        clf.save(tmp_path / f"m{crf}")
        back = TokenClassifier.load(tmp_path / f"m{crf}", device="cpu")
        assert back.classes_ == clf.classes_ and back.annotate(sents.tokens[:10] + ["raw   text here"]) == before
        assert back.evaluate(sents.tokens, sents.tags)["loss"] == pytest.approx(m_before["loss"], rel=1e-5)
        if crf:
            assert torch.equal(back.module_.crf.transitions.cpu(), clf.module_.crf.transitions.cpu())


def test_decoder_backbone_reads_words_as_running_text(data, tiny_gpt2_dir, tmp_path):
    """GPT-2's byte-level BPE needs a space before every pre-split word; the saved tokenizer keeps it."""
    from transformers import AutoTokenizer

    from lmclassify import TrainConfig
    from lmclassify.token_classifier import TokenClassifier, TokenModelConfig

    _, _, sents = data
    clf = TokenClassifier(model_config=TokenModelConfig(str(tiny_gpt2_dir), train_layers=1), progress=False,
                          train_config=TrainConfig(epochs=1, batch_size=8, learning_rate=5e-3, device="cpu"))
    clf.fit(sents.tokens[:20], sents.tags[:20])
    assert clf.feature_cache_ and clf.tokenizer_.add_prefix_space
    ids = clf.tokenizer_(["Hello", "world"], is_split_into_words=True)["input_ids"]
    assert ids == clf.tokenizer_("Hello world")["input_ids"] or ids == clf.tokenizer_(" Hello world")["input_ids"]
    tags = clf.predict_tags(sents.tokens[:5])
    assert [len(t) for t in tags] == [len(s) for s in sents.tokens[:5]]
    clf.save(tmp_path / "g")
    assert AutoTokenizer.from_pretrained(tmp_path / "g").add_prefix_space
    assert TokenClassifier.load(tmp_path / "g", device="cpu").predict_tags(sents.tokens[:5]) == tags


def test_plain_transformers_reads_the_directory(trained, data):
    """transformers alone (AutoTokenizer + AutoModelForTokenClassification, argmax at the
    first piece of each word) gives the tags lmclassify gives."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from lmclassify.token_classifier import TokenClassifier

    out, crf = trained
    _, _, sents = data
    tok, model = AutoTokenizer.from_pretrained(out), AutoModelForTokenClassification.from_pretrained(out).eval()
    theirs = []
    for words in sents.tokens[:15]:
        enc = tok(words, is_split_into_words=True, return_tensors="pt", truncation=True)
        with torch.no_grad():
            pred = model(**enc).logits[0].argmax(-1).tolist()
        tags, seen = ["O"] * len(words), set()
        for i, w in enumerate(enc.word_ids()):
            if w is not None and w not in seen:
                seen.add(w)
                tags[w] = model.config.id2label[pred[i]]
        theirs.append(tags)
    ours = TokenClassifier.load(out, device="cpu")
    if crf:  # transformers loads it but knows nothing of the transitions; lmclassify.json says so
        ours.module_.crf, ours.task_.crf = None, None
        assert "CRF" in json.loads((out / "lmclassify.json").read_text())["notes"][0]
    assert theirs == ours.predict_tags(sents.tokens[:15])


def _err(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lmclassify: error: ") and "\n" not in err
    return err


def test_bad_input_is_one_line(tmp_path, capsys, data, trained):
    train, dev, _ = data
    bad = tmp_path / "bad.conll"
    bad.write_text("Paris\tB-location\nis\tO\n\nno-tag-here\n")
    assert "bad.conll, line 4: token 'no-tag-here' has no tag" in _err(
        capsys, ["train-tokens", "--train", str(bad), "-o", str(tmp_path / "o")])
    unseen = _write(tmp_path / "test.conll", [["Foo", "Bar"]], [["B-spaceship", "I-spaceship"]])
    err = _err(capsys, ["train-tokens", "--train", str(train), "--test", str(unseen), "-o", str(tmp_path / "o")])
    assert "test split" in err and "'B-spaceship' (line 1)" in err and "not seen in the training data" in err
    assert not (tmp_path / "o").exists()
    assert "--recipe" in _err(capsys, ["train-tokens", "-o", str(tmp_path / "o")])
    out, _ = trained
    assert "not seen in the training data" in _err(capsys, ["evaluate-tokens", str(out), "--data", str(unseen)])
    assert "not an lmclassify model directory" in _err(capsys, ["predict-tokens", str(tmp_path), "--text", "x"])
    for cmd in (["predict", str(out), "--text", "x"], ["evaluate", str(out), "--data", str(dev)]):
        assert "use 'lmclassify predict-tokens'" in _err(capsys, cmd)  # the sequence commands point the way


@pytest.mark.slow
def test_minilm_learns_wnut17_entities(data, tmp_path):
    """Real weights: a few hundred sentences and the top two blocks already find entities."""
    train_all = read_conll(WNUT / "wnut17train.conll")
    train = _write(tmp_path / "train.conll", *[x[:600] for x in (train_all.tokens, train_all.tags)])
    _, dev, _ = data
    assert main(["train-tokens", "--train", str(train), "--validation", str(dev), "--model", "minilm-l6",
                 "--train-layers", "2", "--epochs", "3", "--lr", "3e-4", "--output", str(tmp_path / "m")]) == 0
    m = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert m["validation"]["entity_f1"] > 0.15, m["validation"]


def test_recipe_defaults_and_explicit_options(tmp_path):
    from lmclassify.cli import build_parser
    from lmclassify.cli.ner import config_from_args
    from lmclassify.errors import LmClassifyError
    from lmclassify.training.token_run import TokenRunConfig

    a = build_parser().parse_args(["train-tokens", "--recipe", "wnut17", "--epochs", "1", "--crf", "--model", "m",
                                   "-o", "x"])
    cfg = config_from_args(a)
    assert (cfg.train.epochs, cfg.train.learning_rate, cfg.train.schedule) == (1, 2e-4, "linear")
    assert cfg.train.monitor == "val_entity_f1"  # the recipe's metric keeps the best weights
    plain = config_from_args(build_parser().parse_args(["train-tokens", "--train", "t.conll", "-o", "x"]))
    assert plain.train.monitor == "val_loss"
    given = build_parser().parse_args(["train-tokens", "--recipe", "wnut17", "--monitor", "val_loss", "-o", "x"])
    assert config_from_args(given).train.monitor == "val_loss"
    assert (cfg.model.name, cfg.model.crf, cfg.model.train_layers, cfg.model.max_length) == ("m", True, 2, 128)
    cfg.save(tmp_path / "c.json")
    assert TokenRunConfig.load(tmp_path / "c.json") == cfg
    with pytest.raises(LmClassifyError, match="unknown model option"):
        TokenRunConfig.from_dict({"model": {"crff": True}})
