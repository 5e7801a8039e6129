"""Label alignment to word pieces (hand-built, with the real MiniLM WordPiece tokenizer),
decoding back to one tag per word, the losses, entity metrics and character spans."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from lmclassify.evaluation.entities import entity_metrics, spans
from lmclassify.models.crf import CRF
from lmclassify.data.batching import IGNORE, align_labels, encode_words
from lmclassify.tasks import TokenLabels, first_pieces
from lmclassify.training.loop import predict_logits


def TokenTask(tags, crf=None) -> TokenLabels:
    """The task bound to a network's CRF, as the estimator binds it."""
    task = TokenLabels(tags)
    task.attach(_WithCRF(crf))
    return task


class _WithCRF(nn.Module):
    def __init__(self, crf):
        super().__init__()
        self.crf = crf

X = IGNORE


pytestmark = pytest.mark.one_thread  # tiny tensors: a thread pool only adds waiting (conftest.py)
WORDS = ["Empire", "Buildingxyzzy", "ESB", "\u200b", "&gt;"]  # a zero-width space has no piece at all


@pytest.fixture(scope="module")
def tok(tiny_bert_dir):
    from lmclassify.models.load import load_tokenizer

    return load_tokenizer(tiny_bert_dir, words=True)


def test_first_piece_carries_the_word_label(tok):
    enc = encode_words(tok, [WORDS], [[1, 2, 3, 0, 4]], max_length=None)
    word_ids = enc.word_ids
    pieces = tok.convert_ids_to_tokens(enc.input_ids[0])
    assert pieces == ["[CLS]", "empire", "building", "##xy", "##zzy", "es", "##b", "&", "gt", ";", "[SEP]"]
    assert word_ids[0] == [None, 0, 1, 1, 1, 2, 2, 4, 4, 4, None]
    assert enc.labels[0] == [X, 1, 2, X, X, 3, X, 4, X, X, X]


def test_truncation_padding_and_unlabelled_markers(tok):
    enc = encode_words(tok, [WORDS, ["hi"]], None, max_length=6)
    # prediction marks first pieces with 0; labels are padded to one length for the loop's collate
    assert enc.labels == [[X, 0, 0, X, X, X], [X, 0, X, X, X, X]]
    assert [len(x) for x in enc.input_ids] == [6, 3]
    assert enc.truncated == 1 and enc.n_words == [5, 1]


def test_align_labels_by_hand():
    assert align_labels([None, 0, 0, 1, None], [7, 8]) == [X, 7, X, 8, X]
    assert align_labels([], []) == []


def test_first_pieces_gathers_left():
    x = torch.tensor([[10, 11, 12, 13], [20, 21, 22, 23]])
    keep = torch.tensor([[False, True, False, True], [True, True, True, False]])
    out, mask = first_pieces(x, keep)
    assert out[0, :2].tolist() == [11, 13] and out[1].tolist() == [20, 21, 22]
    assert mask.tolist() == [[True, True, False], [True, True, True]]


class PositionModel(nn.Module):
    """Scores tag (position mod C) highest at every position: decoding must map pieces to words."""

    def __init__(self, C):
        super().__init__()
        self.C = C

    def forward(self, input_ids=None, attention_mask=None, hidden=None):
        B, T = input_ids.shape
        return 5.0 * nn.functional.one_hot(torch.arange(T) % self.C, self.C).float().expand(B, T, self.C)


@pytest.mark.parametrize("crf", [False, True])
def test_tag_words_maps_pieces_back_to_words(tok, crf):
    tags = ["O", "B-a", "I-a", "B-b", "I-b", "B-c", "I-c"]
    sents = [WORDS, ["short"], WORDS[:3]]
    enc = encode_words(tok, sents, None, max_length=6)
    task = TokenTask(tags, CRF(len(tags)) if crf else None)
    logits = predict_logits(PositionModel(len(tags)), task, enc, tok.pad_token_id, torch.device("cpu"), batch_size=2)
    got, probs = task.word_tags(logits, enc.labels, enc.word_ids, [len(s) for s in sents])
    ids = [[tags.index(t) for t in row] for row in got]
    # first pieces sit at positions 1 and 2; words cut off by max_length (or with no piece) are O (0)
    assert ids == [[1, 2, 0, 0, 0], [1], [1, 2, 0]]
    assert probs[0][2:] == [1.0, 1.0, 1.0] and 0.9 < probs[1][0] < 1.0


def test_losses_ignore_non_first_pieces():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 3)
    labels = torch.tensor([[X, 1, X, 2, X], [X, 0, X, X, X]])
    ce = TokenTask(["O", "B-a", "I-a"]).loss(logits, labels)
    ref = nn.functional.cross_entropy(torch.stack([logits[0, 1], logits[0, 3], logits[1, 1]]), torch.tensor([1, 2, 0]))
    assert ce.item() == pytest.approx(ref.item(), rel=1e-6)
    crf = CRF(3)
    with torch.no_grad():
        crf.transitions.normal_()
    got = TokenTask(["O", "B-a", "I-a"], crf).loss(logits, labels)
    e = torch.stack([torch.stack([logits[0, 1], logits[0, 3]]), torch.stack([logits[1, 1], logits[1, 1]])])
    ref = crf.nll(e, torch.tensor([[1, 2], [0, X]]), torch.tensor([[True, True], [True, False]])).mean()
    assert got.item() == pytest.approx(ref.item(), rel=1e-6)
    # padded longer than the logits (the loop's fixed-length labels) changes nothing
    wide = torch.cat([labels, torch.full((2, 3), X)], 1)
    assert TokenTask(["O", "B-a", "I-a"], crf).loss(logits, wide).item() == pytest.approx(got.item())


def test_task_metrics_from_stacked_or_listed_logits():
    task = TokenTask(["O", "B-a", "I-a"])
    logits = torch.zeros(2, 4, 3)
    logits[0, 1, 1] = logits[0, 2, 2] = logits[1, 1, 1] = 9.0  # row 0: B-a I-a ; row 1: B-a, O
    labels = [[X, 1, 2, X], [X, 1, 0, X]]
    m = task.metrics(logits, labels)
    assert m["entity_f1"] == 1.0 and m["accuracy"] == 1.0 and m["n_entities"] == 2
    assert task.metrics(task.gather([logits[0, :3], logits[1]]), labels)["entity_f1"] == 1.0
    assert task.correct(logits, torch.tensor(labels)) == 2.0


def test_entity_metrics_by_hand_and_against_seqeval():
    from seqeval.metrics import f1_score, precision_score, recall_score

    true = [["B-per", "I-per", "O", "B-loc"], ["B-org", "O"]]
    pred = [["B-per", "I-per", "O", "O"], ["B-org", "B-loc"]]  # 2 of 3 found, 1 spurious
    m = entity_metrics(true, pred, loss=0.5, types=["loc", "org", "per", "misc"])
    assert (m["entity_precision"], m["entity_recall"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert m["entity_f1"] == pytest.approx(f1_score(true, pred))
    assert m["entity_precision"] == pytest.approx(precision_score(true, pred))
    assert m["entity_recall"] == pytest.approx(recall_score(true, pred))
    assert m["token_accuracy"] == m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_class"]["per"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert m["per_class"]["loc"]["precision"] == 0.0 and m["per_class"]["misc"]["support"] == 0
    assert m["f1_macro"] == pytest.approx((0 + 1 + 1) / 3)  # types seen in truth or predictions
    assert (m["n"], m["n_tokens"], m["n_entities"], m["n_predicted"], m["loss"]) == (2, 6, 3, 3, 0.5)
    empty = entity_metrics([["O"]], [["O"]])
    assert empty["entity_f1"] == 0.0 and empty["accuracy"] == 1.0
    with pytest.raises(ValueError, match="sentence 0 has 1 true tags but 2"):
        entity_metrics([["O"]], [["O", "O"]])


def test_spans_have_character_offsets():
    text = "I   love New York"
    tags = ["O", "O", "B-loc", "I-loc"]
    got = spans(tags, [(0, 1), (4, 8), (9, 12), (13, 17)], text, [1.0, 1.0, 0.8, 0.6])
    assert got == [{"label": "loc", "start": 9, "end": 17, "text": "New York", "words": [2, 4], "score": 0.7}]
    # an I- after O opens an entity (conlleval), as seqeval scores it
    assert [e["text"] for e in spans(["I-x", "O", "I-y", "I-y"], [(0, 1), (2, 3), (4, 5), (6, 7)], "a b c d")] \
        == ["a", "c d"]
