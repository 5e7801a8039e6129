"""Encoding: how many examples max_length cut, in every pair mode, with real tokenizers."""
from __future__ import annotations

import pytest

from lmclassify.data.batching import Encoded, encode


@pytest.fixture(scope="module")
def gpt2(gpt2_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gpt2_tokenizer_dir)
    tok.pad_token = tok.eos_token
    return tok


@pytest.fixture(scope="module")
def bert(tiny_bert_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_bert_dir)


def gpt2_text(n: int) -> str:
    """A text of exactly n GPT-2 tokens: 'hello' then ' world' n-1 times (no special tokens)."""
    return "hello" + " world" * (n - 1)


def words(n: int) -> str:
    """n WordPiece tokens for the BERT tokenizer (before [CLS]/[SEP])."""
    return " ".join(["hello"] * n)


def truncated_ids(tok, texts, pairs, max_length):
    """What encode produced before it counted anything: one truncating call."""
    return tok(texts, pairs, truncation=True, max_length=max_length, add_special_tokens=True)["input_ids"]


def test_token_counts_are_what_the_helpers_say(gpt2, bert):
    assert [len(gpt2(gpt2_text(n))["input_ids"]) for n in (1, 5, 6)] == [1, 5, 6]
    assert len(bert(words(4))["input_ids"]) == 6  # [CLS] 4 words [SEP]
    assert len(bert(words(3), words(4))["input_ids"]) == 10  # [CLS] 3 [SEP] 4 [SEP]


def test_single_texts_count_only_the_ones_cut(gpt2):
    texts = [gpt2_text(3), gpt2_text(5), gpt2_text(6), gpt2_text(40), ""]
    enc = encode(gpt2, texts, [0, 1, 0, 1, 0], max_length=5)
    assert enc.truncated == 2  # 6 and 40 tokens; 3 (shorter) and 5 (exactly max_length) are whole
    assert enc.input_ids[:4] == truncated_ids(gpt2, texts[:4], None, 5)  # ids unchanged
    assert enc.input_ids[4] == [gpt2.eos_token_id]  # an empty text keeps one token, not counted
    assert [len(x) for x in enc.input_ids] == [3, 5, 5, 5, 1]


def test_no_max_length_or_nothing_long_counts_nothing(gpt2, bert):
    texts = [gpt2_text(3), gpt2_text(40)]
    assert encode(gpt2, texts, None, max_length=None).truncated == 0
    assert encode(gpt2, texts, None, max_length=40).truncated == 0  # exactly at max_length
    assert encode(gpt2, texts, None, max_length=39).truncated == 1
    assert encode(bert, [words(4)], None, max_length=6).truncated == 0  # specials included: 6 tokens
    assert encode(bert, [words(5)], None, max_length=6).truncated == 1
    assert Encoded([[1]]).truncated == 0


def test_joint_pairs_with_the_tokenizer_pair_format_count_once(bert):
    a = [words(3), words(4), words(2), words(20), words(1)]
    b = [words(4), words(4), words(20), words(20), words(1)]
    enc = encode(bert, a, [0] * 5, max_length=10, pairs=b)
    assert enc.truncated == 3  # 10 tokens exactly is whole; 11, 25 and 43 are cut, each pair once
    assert enc.input_ids == truncated_ids(bert, a, b, 10)
    assert [len(x) for x in enc.input_ids] == [10, 10, 10, 10, 5]


def test_joint_pairs_with_a_pair_template_count_once(gpt2):
    a = [gpt2_text(2), gpt2_text(3), gpt2_text(10)]
    b = [gpt2_text(2), gpt2_text(3), gpt2_text(10)]
    template = "{a}\n{b}"
    n = [len(gpt2(template.format(a=x, b=y))["input_ids"]) for x, y in zip(a, b)]
    max_length = n[1]  # the second pair is exactly max_length, the third longer
    enc = encode(gpt2, a, None, max_length=max_length, pairs=b, pair_template=template)
    assert n[0] < max_length < n[2] and enc.truncated == 1
    assert enc.input_ids == truncated_ids(gpt2, [template.format(a=x, b=y) for x, y in zip(a, b)], None,
                                          max_length)


def test_siamese_pairs_count_an_example_once_if_either_side_was_cut(gpt2):
    a = [gpt2_text(3), gpt2_text(9), gpt2_text(2), gpt2_text(9), gpt2_text(5)]
    b = [gpt2_text(3), gpt2_text(2), gpt2_text(9), gpt2_text(9), gpt2_text(5)]
    enc = encode(gpt2, a, [0] * 5, max_length=5, pairs=b, pair_mode="siamese")
    assert enc.truncated == 3  # first side, second side, both (once); 5 and 5 are whole
    assert enc.input_ids == truncated_ids(gpt2, a, None, 5)
    assert enc.pair_ids == truncated_ids(gpt2, b, None, 5)


def test_recounting_does_not_warn_about_the_model_maximum(bert, capfd, caplog):
    long = words(bert.model_max_length + 10)
    enc = encode(bert, [long, words(2)], None, max_length=16)
    assert enc.truncated == 1
    out = capfd.readouterr()
    assert "sequence length is longer" not in out.err + out.out + caplog.text


def _padded(lengths, batches) -> int:
    return sum(len(b) * int(lengths[b].max()) for b in batches)


def test_sorted_batches_cut_where_padding_costs_least():
    import numpy as np

    from lmclassify.data.batching import sorted_batches

    lengths = np.clip(np.exp(np.random.default_rng(0).normal(3.5, 0.7, 149)), 5, 256).astype(int)  # SMS-like
    batches = sorted_batches(lengths, 32, budget=8192)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))  # every text once
    assert list(lengths[flat]) == sorted(lengths, reverse=True)  # longest first
    assert all(len(b) <= 32 and len(b) * lengths[b].max() <= 8192 for b in batches)
    order = np.argsort(-lengths, kind="stable")
    fixed = [order[i:i + 32] for i in range(0, len(order), 32)]
    assert _padded(lengths, batches) < 0.85 * _padded(lengths, fixed)
    # the cut is optimal: padding plus the per-batch overhead never beats fixed-size cuts
    assert _padded(lengths, batches) + 32 * len(batches) <= _padded(lengths, fixed) + 32 * len(fixed)
    # a text past the budget goes alone; equal lengths fill whole batches
    assert [b.tolist() for b in sorted_batches(np.array([5, 300, 7, 7]), 8, budget=100)] == [[1], [2, 3, 0]]
    assert sorted(len(b) for b in sorted_batches(np.full(10, 12), 4)) == [2, 4, 4]


def test_rows_picks_examples_and_refuses_windows():
    enc = Encoded([[1, 2], [3], [4, 5, 6]], labels=[0, 1, 0], pair_ids=[[7], [8], [9]])
    sub = enc.rows([2, 0])
    assert sub.input_ids == [[4, 5, 6], [1, 2]] and sub.labels == [0, 0] and sub.pair_ids == [[9], [7]]
    windowed = Encoded([[1], [2]], windows=object())
    with pytest.raises(ValueError, match="windows"):
        windowed.rows([0])
