"""Long texts (``--long-text truncate|head-tail|chunk``, ``data/windows.py``): windows cover
every token, each framed like a whole text; window logits fold back into one prediction
per text by mean or max; token labelling tags every word of a sentence past max_length."""
from __future__ import annotations

import json
import random

import pytest
import torch
from transformers import AutoTokenizer

from lmclassify import LmClassifyError, TextClassifier, TokenClassifier
from lmclassify.data.batching import IGNORE, encode, encode_words
from lmclassify.data.windows import head_tail, merge, spans, word_spans
from lmclassify.models.input_template import apply_input_template
from lmclassify.training.loop import predict_logits

pytestmark = pytest.mark.one_thread  # tiny models: a 2-thread pool only adds waiting (conftest.py)

CPU = torch.device("cpu")
LONG = " ".join(f"word{i} and more" for i in range(60))  # ~300 WordPiece tokens
WORDS = [f"tok{i}" for i in range(40)]  # 40 words, several pieces each


@pytest.fixture(scope="module")
def bert_tok(tiny_bert_dir):
    return AutoTokenizer.from_pretrained(tiny_bert_dir)


def _tiny(model_dir, **kw) -> TextClassifier:
    return TextClassifier(str(model_dir), **{"epochs": 1, "batch_size": 8, "learning_rate": 1e-3,
                                             "progress": False, "device": "cpu", **kw})


# ---- windows over token positions ------------------------------------------------------

def test_spans_cover_everything_overlap_and_fit():
    rng = random.Random(0)
    for _ in range(500):
        budget = rng.randint(2, 60)
        overlap = rng.randint(0, budget - 1)
        n = rng.randint(1, 400)
        got = spans(n, budget, overlap)
        assert got[0][0] == 0 and got[-1][1] == n
        assert all(0 < e - s <= budget for s, e in got)
        assert len({e - s for s, e in got}) == 1  # equal windows: each counts the same in the mean
        for (s0, e0), (s1, e1) in zip(got, got[1:]):
            assert s0 < s1 and e1 > e0 and e0 - s1 >= overlap - 1  # rounding may cost one token
        # the fewest windows of this size: one fewer could not cover n with this overlap
        assert len(got) == 1 or (len(got) - 1) * budget - (len(got) - 2) * overlap < n
        # tokens read: the text plus the overlaps, never a full extra window
        assert sum(e - s for s, e in got) <= n + (len(got) - 1) * (overlap + 1)


def test_word_spans_keep_words_whole_and_cover_every_word():
    rng = random.Random(1)
    for _ in range(300):
        n_words = rng.randint(1, 50)
        wid = [w for w in range(n_words) for _ in range(rng.randint(1, 4))]
        budget, overlap = rng.randint(4, 20), rng.randint(0, 3)
        got = word_spans(wid, budget, overlap)
        assert got[0][0] == 0 and got[-1][1] == len(wid)
        assert all(e - s <= budget for s, e in got)
        starts = {s for s, _ in got}
        assert all(s == 0 or wid[s] != wid[s - 1] for s in starts)  # a window starts at a word
        covered = {wid[j] for s, e in got for j in range(s, e)}
        assert covered == set(range(n_words))


def test_head_tail_keeps_a_quarter_from_the_start():
    assert head_tail(list(range(100)), 20) == list(range(5)) + list(range(85, 100))
    assert head_tail([1, 2, 3], 20) == [1, 2, 3]


# ---- encoding --------------------------------------------------------------------------

def test_chunk_windows_are_framed_and_cover_the_text(bert_tok):
    full = bert_tok(LONG)["input_ids"]
    enc = encode(bert_tok, [LONG, "short text"], [1, 0], 64, long_text="chunk", stride=8)
    win = enc.windows
    rows = [r for r, d in enumerate(win.doc) if d == 0]
    assert len(rows) >= len(full) // 62 and win.doc[-1] == 1 and win.n_docs == 2
    assert enc.labels == [1, 0] and win.row_labels == [1] * len(rows) + [0]
    content = []
    for r in rows:
        ids = enc.input_ids[r]
        assert len(ids) <= 64 and ids[0] == bert_tok.cls_token_id and ids[-1] == bert_tok.sep_token_id
        content.append(ids[1:-1])
    joined = content[0]
    for prev, nxt in zip(content, content[1:]):  # each window starts inside the previous one
        k = next(k for k in range(len(prev)) if prev[k:] == nxt[:len(prev) - k])
        assert len(prev) - k >= 7
        joined = joined + nxt[len(prev) - k:]
    assert joined == full[1:-1]
    assert (enc.truncated, enc.over_length) == (0, 1)


def test_head_tail_and_truncate_counts(bert_tok):
    full = bert_tok(LONG)["input_ids"]
    ht = encode(bert_tok, [LONG, "short"], None, 42, long_text="head-tail")
    assert ht.windows is None and ht.input_ids[0] == full[:11] + full[-31:]  # 40 of text: 10 head, 30 tail
    assert (ht.truncated, ht.over_length) == (1, 1)
    cut = encode(bert_tok, [LONG, "short"], None, 42)
    assert cut.input_ids[0][:-1] == full[:41] and (cut.truncated, cut.over_length) == (1, 1)
    with pytest.raises(LmClassifyError, match="single texts"):
        encode(bert_tok, [LONG], None, 42, pairs=["b"], long_text="chunk")
    joined = encode(bert_tok, [LONG], None, 42, pairs=["b"], long_text="chunk", pair_template="{a}\n\n{b}")
    assert joined.windows is not None and joined.over_length == 1  # a decoder's joined pair is one text
    with pytest.raises(LmClassifyError, match="--stride 40 must be smaller"):
        encode(bert_tok, [LONG], None, 42, long_text="chunk", stride=40)
    with pytest.raises(LmClassifyError, match="--stride 40 must be smaller"):
        encode_words(bert_tok, [WORDS], None, 42, windows=True, stride=40)


def test_every_window_of_a_decoder_sits_in_its_chat_frame(tiny_chat_llama_dir):
    tok = AutoTokenizer.from_pretrained(tiny_chat_llama_dir)
    assert apply_input_template(tok, "chat", is_encoder=False) == "chat"
    framed = tok("x")["input_ids"]
    bare = tok("x", add_special_tokens=False)["input_ids"]
    k = framed.index(bare[0])
    pre, post = framed[:k], framed[k + len(bare):]
    assert pre and post
    enc = encode(tok, [LONG], None, 48, long_text="chunk")
    assert len(enc.input_ids) > 2
    for ids in enc.input_ids:
        assert ids[:len(pre)] == pre and ids[-len(post):] == post and len(ids) <= 48


# ---- aggregation -----------------------------------------------------------------------

def test_merge_by_mean_and_max():
    rows = [torch.tensor([1.0, 0.0]), torch.tensor([3.0, -2.0]), torch.tensor([5.0, 5.0])]
    from lmclassify.data.windows import Windows

    assert torch.equal(torch.stack(merge(rows, Windows([0, 0, 1], 2, "mean"))), torch.tensor([[2.0, -1.0], [5.0, 5.0]]))
    assert torch.equal(torch.stack(merge(rows, Windows([0, 0, 1], 2, "max"))), torch.tensor([[3.0, 0.0], [5.0, 5.0]]))


@pytest.mark.parametrize("how", ["mean", "max"])
def test_chunk_prediction_aggregates_the_windows_logits(tiny_bert_dir, how):
    texts = [LONG, "free prize now", LONG.replace("and", "or"), "see you at six"] * 2
    labels = ["a", "b"] * 4
    est = _tiny(tiny_bert_dir, max_length=40, long_text="chunk", chunk_aggregate=how).fit(texts, labels)
    assert (est.model_config_.long_text, est.model_config_.chunk_aggregate) == ("chunk", how)
    enc = est._encode([LONG, "short one"])
    n_rows = len(enc.input_ids)
    assert n_rows > 2 and enc.windows.doc[-1] == 1
    with torch.inference_mode():  # each window alone, no batching, no padding
        per_row = torch.stack([est.module_(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids),
                               dtype=torch.long))[0] for ids in enc.input_ids])
    long_rows = per_row[:-1]
    expected = long_rows.mean(0) if how == "mean" else long_rows.amax(0)
    got = est.decision_function([LONG, "short one"])
    assert got.shape == (2, 2)
    torch.testing.assert_close(got[0], expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got[1], per_row[-1], rtol=1e-4, atol=1e-5)
    assert len(est.predict([LONG, "x"])) == 2 and est.predict_proba([LONG]).shape == (1, 2)
    m = est.evaluate(texts, labels)
    assert m["n"] == len(texts) and m["over_max_length"] == 4 and m["truncated"] == 0


def test_chunk_trains_from_cached_windows_and_saves_the_choice(tiny_bert_dir, tmp_path):
    texts = [LONG, "free prize now", LONG.replace("and", "or"), "see you at six"] * 2
    labels = ["a", "b"] * 4
    est = _tiny(tiny_bert_dir, max_length=40, long_text="chunk", train_layers=1, stride=4)
    est.fit(texts, labels, validation=(texts[:4], labels[:4]))
    assert est.feature_cache_
    train = est._encoded["train"]
    assert len(train.features) == len(train.input_ids) > len(texts)  # the cache holds windows
    assert est.fit_result_.history[-1]["val_accuracy"] is not None
    est.save(tmp_path / "m")
    back = TextClassifier.load(tmp_path / "m")
    mc = back.model_config_
    assert (mc.long_text, mc.stride, mc.chunk_aggregate) == ("chunk", 4, "mean")
    torch.testing.assert_close(back.decision_function([LONG]), est.decision_function([LONG]), rtol=1e-4, atol=1e-5)


# ---- token labelling -------------------------------------------------------------------

class FirstPieceId(torch.nn.Module):
    """Outputs each position's token id (and its position) as its two 'tag scores', so the
    merged outputs show which window and which piece each word was read from."""

    def forward(self, input_ids=None, attention_mask=None, hidden=None):
        B, T = input_ids.shape
        pos = torch.arange(T).expand(B, T)
        return torch.stack([input_ids.float(), pos.float()], -1)  # (B, T, 2)


def test_ner_windows_lose_no_word(bert_tok):
    sents = [WORDS, ["short", "one"]]
    tags = [[i % 3 for i in range(len(s))] for s in sents]
    full = bert_tok(WORDS, is_split_into_words=True)
    assert len(full["input_ids"]) > 3 * 24  # several windows of 24
    enc = encode_words(bert_tok, sents, tags, 24, windows=True, stride=6)
    win = enc.windows
    assert enc.over_length == 1 and enc.truncated == 0 and win.doc.count(0) >= 3
    assert enc.word_ids == [list(range(40)), [0, 1]]
    assert [x[:len(t)] for x, t in zip(enc.labels, tags)] == tags  # per word, in order
    for r, ids in enumerate(enc.input_ids):  # every window: [CLS] whole words [SEP], labels on first pieces
        assert len(ids) <= 24 and ids[0] == bert_tok.cls_token_id and ids[-1] == bert_tok.sep_token_id
        assert sum(x != IGNORE for x in win.row_labels[r]) >= 1
    from lmclassify.tasks import TokenLabels

    logits = predict_logits(FirstPieceId(), TokenLabels(["a", "b"]), enc, bert_tok.pad_token_id, CPU, batch_size=2)
    first_piece = {}
    for j, w in enumerate(full.word_ids()):
        if w is not None:
            first_piece.setdefault(w, full["input_ids"][j])
    # every word is read, at its own first piece
    assert logits[0, :40, 0].long().tolist() == [first_piece[w] for w in range(40)]
    # ... from the window where it sits most centrally: never at a window's edge when another has it inside
    positions = logits[0, :40, 1].long().tolist()
    assert min(positions[5:35]) > 1
    # the loader's word decoding gives every word a tag from the network, none the 'cut off' O
    task = TokenLabels(["O", "B-x", "I-x"])
    scores = torch.randn(2, 40, 3)
    got, probs = task.word_tags(scores, enc.labels, enc.word_ids, [40, 2])
    assert [len(t) for t in got] == [40, 2] and all(p < 1.0 for p in probs[0])


def test_token_classifier_tags_every_word_of_a_long_sentence(tiny_bert_dir):
    x = [WORDS, ["alpha", "beta"], WORDS[:5]]
    y = [["B-x" if i % 4 == 0 else "O" for i in range(len(s))] for s in x]
    est = TokenClassifier(str(tiny_bert_dir), max_length=20, epochs=1, batch_size=4, learning_rate=3e-3,
                          progress=False, device="cpu").fit(x, y)
    assert est._encoded["train"].windows is not None
    words, tags, probs = est._tag([WORDS])
    assert len(tags[0]) == 40 and all(p < 1.0 for p in probs[0])  # none defaulted to O for want of a piece
    m = est.evaluate(x, y)
    assert m["untagged_words"] == 0 and m["over_max_length"] == 1 and m["truncated"] == 0


# ---- the CLI: summary, metrics, report, saved config, predict ------------------------

def test_cli_train_with_chunk_counts_long_texts_and_predicts_whole(tiny_bert_dir, tmp_path, capsys):
    import csv

    import lmclassify
    from lmclassify.cli import main

    data = tmp_path / "docs.csv"
    with open(data, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(30):
            w.writerow([LONG.replace("more", f"more{i}") if i % 3 == 0 else f"short text {i}", "ab"[i % 2]])
    out = tmp_path / "m"
    assert main(["train", "--data", str(data), "--model", str(tiny_bert_dir), "--max-length", "40",
                 "--long-text", "chunk", "--chunk-aggregate", "max", "--output", str(out), "--epochs", "1",
                 "--batch-size", "8", "--learning-rate", "1e-3", "--device", "cpu"]) == 0
    summary = capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())
    assert m["truncated"] == {"train": 0, "validation": 0, "test": 0}
    over = m["over_max_length"]
    assert sum(over.values()) == 10 and over == {s: m[s]["over_max_length"] for s in over}
    assert any("read in windows" in x for x in summary.splitlines() if x.strip().startswith("train"))
    report = (out / "report.md").read_text()
    assert "were read whole in overlapping windows" in report and "over_max_length" in report
    saved = json.loads((out / "training_config.json").read_text())["model"]
    assert (saved["long_text"], saved["chunk_aggregate"], saved["stride"]) == ("chunk", "max", None)
    notes = json.loads((out / "lmclassify.json").read_text())["notes"]
    assert any("read chunk by lmclassify; plain transformers truncates them" in n for n in notes)
    records = lmclassify.predict(out, [LONG, "short"], device="cpu")
    clf = lmclassify.load(out)
    assert [r["label"] for r in records] == clf.predict([LONG, "short"])
    assert clf.model_config_.chunk_aggregate == "max"
    assert main(["train", "--data", str(data), "--model", str(tiny_bert_dir), "--stride", "-1",
                 "--output", str(tmp_path / "bad")]) != 0
    assert "--stride must be a whole number >= 0" in capsys.readouterr().err
