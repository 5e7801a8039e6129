"""`lmclassify pretrain`: the masking rule (rates on a large sample, labels only on the chosen
positions, whole words, the causal shift), masks that do not depend on batching, and the
pretrain -> train chain through the real CLI on tiny encoder and decoder models."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lmclassify.data.batching import collate
from lmclassify.models.load import load_tokenizer
from lmclassify.tasks.language_modeling import IGNORE, LanguageModeling

pytestmark = pytest.mark.one_thread

WORDS = ("the market price rises quickly today while unbelievably tokenization questions about "
         "photosynthesis and the dog runs slowly across international boundaries").split()


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 30))) for _ in range(n)]


def _masked(task: LanguageModeling, texts: list[str], epoch=0, batch_size: int = 64):
    """(original ids, inputs, labels, special mask) of every text, unpadded, in text order."""
    enc = task.encode(texts, 128)
    out = [None] * len(enc)
    pad = task.tokenizer.pad_token_id
    for start in range(0, len(enc), batch_size):
        idx = list(range(start, min(start + batch_size, len(enc))))
        b = task.prepare_batch(collate(enc, idx, pad, False), enc, idx, epoch)
        assert torch.equal(b["labels"], b["targets"])
        for r, i in enumerate(idx):
            n = len(enc.input_ids[i])
            assert (b["labels"][r, n:] == IGNORE).all()  # padding is never a target
            out[i] = (torch.tensor(enc.input_ids[i]), b["input_ids"][r, :n], b["labels"][r, :n],
                      torch.tensor(enc.special[i], dtype=torch.bool))
    return out


@pytest.fixture(scope="module")
def bert_tok(tiny_bert_dir):
    return load_tokenizer(tiny_bert_dir)


def test_mlm_rule_rates_and_labels_only_on_chosen_positions(bert_tok):
    task = LanguageModeling(bert_tok, causal=False, mlm_probability=0.15, seed=3)
    rows = _masked(task, _texts(3000))
    mask_id = bert_tok.mask_token_id
    chosen = eligible = as_mask = kept = other = 0
    for ids, inputs, labels, special in rows:
        picked = labels != IGNORE
        assert not (picked & special).any()  # [CLS]/[SEP] are never chosen
        assert torch.equal(labels[picked], ids[picked])  # the label is the original token
        assert torch.equal(inputs[~picked], ids[~picked])  # nothing else is touched
        eligible += int((~special).sum())
        chosen += int(picked.sum())
        as_mask += int((inputs[picked] == mask_id).sum())
        kept += int((inputs[picked] == ids[picked]).sum())
        other += int(((inputs[picked] != mask_id) & (inputs[picked] != ids[picked])).sum())
    assert eligible > 50_000
    assert abs(chosen / eligible - 0.15) < 0.01
    assert abs(as_mask / chosen - 0.80) < 0.02
    assert abs(kept / chosen - 0.10) < 0.015
    assert abs(other / chosen - 0.10) < 0.015


def test_masks_depend_on_the_text_and_epoch_not_on_the_batch(bert_tok):
    task = LanguageModeling(bert_tok, causal=False, seed=5)
    texts = _texts(40, seed=1)
    a = _masked(task, texts, epoch=0, batch_size=7)
    b = _masked(task, texts, epoch=0, batch_size=16)
    c = _masked(task, texts, epoch=1, batch_size=7)
    assert all(torch.equal(x[1], y[1]) and torch.equal(x[2], y[2]) for x, y in zip(a, b))
    assert not all(torch.equal(x[2], y[2]) for x, y in zip(a, c))  # a new epoch draws new masks
    evals = [_masked(task, texts, epoch=None, batch_size=bs) for bs in (5, 40)]
    assert all(torch.equal(x[2], y[2]) for x, y in zip(*evals))  # validation: the same masks every time


def test_whole_word_mask_chooses_every_piece_of_a_word(bert_tok):
    task = LanguageModeling(bert_tok, causal=False, mlm_probability=0.2, whole_word_mask=True, seed=0)
    texts = _texts(400, seed=2)
    enc = task.encode(texts, 128)
    rows = _masked(task, texts)
    split_words = 0
    for k, (ids, inputs, labels, special) in enumerate(rows):
        picked = labels != IGNORE
        assert (inputs[picked] == bert_tok.mask_token_id).all()  # transformers: whole words are all [MASK]
        word, prev_end, words = -1, None, []
        for (s, e), sp in zip(enc.offsets[k], special.tolist()):
            if sp:
                words.append(None)
                prev_end = None
                continue
            word += s != prev_end
            words.append(word)
            prev_end = e
        for w in set(x for x in words if x is not None):
            pos = torch.tensor([x == w for x in words])
            assert picked[pos].all() or not picked[pos].any()
            split_words += int(pos.sum()) > 1 and bool(picked[pos].all())
    assert split_words > 20  # words of several pieces were chosen whole


def test_causal_targets_are_the_next_token(tiny_llama_dir):
    tok = load_tokenizer(tiny_llama_dir)
    task = LanguageModeling(tok, causal=True)
    for ids, inputs, labels, _ in _masked(task, _texts(30)):
        assert torch.equal(inputs, ids)
        assert torch.equal(labels[:-1], ids[1:]) and labels[-1] == IGNORE


def test_a_tokenizer_without_a_mask_token_cannot_do_mlm(tiny_llama_dir):
    from lmclassify.errors import LmClassifyError

    with pytest.raises(LmClassifyError, match="no mask token"):
        LanguageModeling(load_tokenizer(tiny_llama_dir), causal=False)


def test_loss_and_metrics_count_only_targets():
    task = LanguageModeling.__new__(LanguageModeling)
    out = torch.tensor([[[2.0, 1.0], [0.0, 0.0], [4.0, 1.0]]])  # (B=1, T=3, 2)
    labels = torch.tensor([[5, IGNORE, 7]])
    assert task.loss(out, labels).item() == pytest.approx(3.0)
    m = task.metrics(task.gather([out[0]]))
    assert m["loss"] == pytest.approx(3.0) and m["tokens"] == 2
    assert m["perplexity"] == pytest.approx(float(torch.tensor(3.0).exp()))


# ---- the job and the CLI, end to end ------------------------------------------------------------

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "LMCLASSIFY_DIE_AT": ""}


def _cli(*args, die_at: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lmclassify", *map(str, args)], capture_output=True, text=True,
                          env={**ENV, "LMCLASSIFY_DIE_AT": die_at}, timeout=300)


@pytest.fixture(scope="module")
def labelled_csv(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("pretrain-data") / "d.csv"
    rows = ["text,label"] + [f"{t},{'ab'[i % 2]}" for i, t in enumerate(_texts(64, seed=4))]
    p.write_text("\n".join(rows) + "\n")
    return p


def _embeddings(directory: Path) -> torch.Tensor:
    w = load_file(str(directory / "model.safetensors"))
    return next(v for k, v in w.items() if k.endswith(("word_embeddings.weight", "embed_tokens.weight")))


@pytest.mark.parametrize("fixture,objective", [("tiny_bert_dir", "mlm"), ("tiny_llama_dir", "causal")])
def test_pretrain_then_train_uses_the_pretrained_weights(request, fixture, objective, labelled_csv, tmp_path):
    base = request.getfixturevalue(fixture)
    lm = tmp_path / "lm"
    p = _cli("pretrain", "--data", labelled_csv, "--model", base, "--output", lm, "--epochs", "2",
             "--batch-size", "8", "--learning-rate", "1e-3", "--seed", "3")
    assert p.returncode == 0, p.stderr
    assert "val_loss" in p.stderr  # a progress line per evaluation
    assert not lm.with_name("lm.partial").exists() and not (lm / "checkpoint").exists()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "pretrain_config.json", "metrics.json",
                 "metrics.jsonl"):
        assert (lm / name).is_file(), name
    m = json.loads((lm / "metrics.json").read_text())
    assert m["objective"] == objective and m["steps"] == 2 * 8  # 58 texts (64 less 10 %), batch 8: 8 steps an epoch
    assert m["validation"]["loss"] < m["validation_before"]["loss"]  # it learnt the texts' tokens
    saved = json.loads((lm / "pretrain_config.json").read_text())
    assert saved["train"]["epochs"] == 2 and saved["pretrain"]["mlm_probability"] == 0.15
    pretrained = _embeddings(lm)
    assert not torch.equal(pretrained, _embeddings(base))  # every weight trained, embeddings too

    clf = tmp_path / "clf"
    p = _cli("train", "--data", labelled_csv, "--model", lm, "--output", clf, "--epochs", "1", "--batch-size", "8")
    assert p.returncode == 0, p.stderr
    # train freezes the embeddings of both families: the classifier's are the pretrained ones
    assert torch.equal(_embeddings(clf), pretrained)


def test_killed_pretraining_resumes_to_the_same_weights(tiny_bert_dir, labelled_csv, tmp_path):
    args = ["pretrain", "--data", labelled_csv, "--model", tiny_bert_dir, "--epochs", "2", "--batch-size", "8",
            "--learning-rate", "1e-3", "--save-every", "3"]
    ref, out = tmp_path / "ref", tmp_path / "m"
    assert _cli(*args, "--output", ref).returncode == 0
    p = _cli(*args, "--output", out, die_at="step:11")
    assert p.returncode == -9 and out.with_name("m.partial").is_dir() and not out.exists()
    p = _cli("pretrain", "--resume", out)
    assert p.returncode == 0, p.stderr
    assert (ref / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()
    a, b = (json.loads((x / "metrics.json").read_text()) for x in (ref, out))
    a.pop("train_seconds"), b.pop("train_seconds")
    assert a == b


def test_bad_options_are_one_line_and_leave_nothing(tiny_llama_dir, labelled_csv, tmp_path):
    out = tmp_path / "x"
    p = _cli("pretrain", "--data", labelled_csv, "--model", tiny_llama_dir, "--objective", "mlm", "--output", out)
    assert p.returncode == 2 and "no mask token" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = _cli("pretrain", "--data", labelled_csv, "--model", tiny_llama_dir, "--mlm-probability", "1.5",
             "--output", out)
    assert p.returncode == 2 and "--mlm-probability" in p.stderr
    p = _cli("pretrain", "--data", labelled_csv, "--model", tiny_llama_dir, "--monitor", "val_accuracy",
             "--output", out)
    assert p.returncode == 2 and "val_perplexity" in p.stderr
    assert not out.exists() and not out.with_name("x.partial").exists()
