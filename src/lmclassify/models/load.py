"""Build a classifier from a model argument: resolve, load tokenizer and weights, fix padding."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from ..errors import LmClassifyError
from .backbone import is_encoder, num_layers
from .classifier import SequenceClassifier
from .heads import make_head
from .input_template import apply_input_template
from .resolve import resolve_model


def load_tokenizer(path: Union[str, Path]):
    """A fast tokenizer with a pad token. Decoders without one (GPT-2) pad with EOS, which
    is safe because the model finds the last real token from the attention mask."""
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except Exception as e:
        raise LmClassifyError(f"could not load a tokenizer from {path}: {e}") from e
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise LmClassifyError(f"tokenizer in {path} has neither a pad nor an EOS token")
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    return tok


def default_pooling(config) -> str:
    return "cls" if is_encoder(config) else "last"


# What `--train-layers auto` means per model kind. Decoders: the last block + final norm +
# head (the book's recipe; a 135M decoder's lower blocks already read text well, and the
# feature cache makes the epochs cheap). Encoders: every block, with the embeddings frozen
# ("blocks" below). On SST-2 with minilm-l6 (6 blocks, 2 CPU cores) the top 2 blocks for 3
# epochs gave 86.3 % test accuracy, the top 3 for 3 epochs 87.2 %, every block for 1-2
# epochs 88.5 %: a small encoder's lower blocks need to adapt, and at 6 blocks the cache
# saves little (a forward is a third of a training step), so it buys less than it costs.
# Freezing the 30k x 384 embedding matrix (half the parameters, no compute) keeps the
# optimiser step cheap and the rare-token rows from drifting on small data.
DECODER_TRAIN_LAYERS: Union[int, str] = 1
ENCODER_TRAIN_LAYERS: Union[int, str] = "blocks"


def default_train_layers(config) -> Union[int, str]:
    """``--train-layers auto``: an int or 'all'/'head' for SequenceClassifier."""
    value = ENCODER_TRAIN_LAYERS if is_encoder(config) else DECODER_TRAIN_LAYERS
    return num_layers(config) if value == "blocks" else value


def needs_own_head(encoder: bool, head: str, siamese: bool) -> bool:
    """Only a decoder's plain linear head on one sequence is transformers' ``score`` layer;
    BERT-style models' own head sits on a tanh pooler we do not use."""
    return encoder or head != "linear" or siamese


def build_classifier(model: str, id2label: dict[int, str], train_layers: Union[int, str] = 1,
                     pooling: str = "auto", head_bias: bool = False, seed: Optional[int] = None,
                     input_template: str = "auto", head: str = "linear",
                     problem_type: str = "single_label_classification",
                     siamese: bool = False) -> tuple[SequenceClassifier, object, Path]:
    """Load ``model`` with a fresh classification head (N(0, 0.02) init, seeded).

    ``id2label`` gives the outputs (one, named e.g. "score", for regression);
    ``problem_type`` is transformers' name for the task, written into config.json."""
    path = resolve_model(model)
    tok = load_tokenizer(path)
    config = AutoConfig.from_pretrained(path)
    encoder = is_encoder(config)
    tok.lmc_input_template = apply_input_template(tok, input_template, encoder)
    config.num_labels = len(id2label)
    config.id2label = {int(k): v for k, v in id2label.items()}
    config.label2id = {v: int(k) for k, v in id2label.items()}
    config.pad_token_id = tok.pad_token_id
    config.problem_type = problem_type
    if train_layers == "auto":
        train_layers = default_train_layers(config)
    if seed is not None:
        torch.manual_seed(seed)  # the head's initialisation
    try:
        hf = AutoModelForSequenceClassification.from_pretrained(path, config=config, dtype=torch.float32)
    except ValueError as e:
        raise LmClassifyError(f"{model}: transformers has no sequence-classification model for it ({e})") from e
    own = None
    if needs_own_head(encoder, head, siamese):
        if seed is not None:
            torch.manual_seed(seed)
        width = config.get_text_config().hidden_size * (3 if siamese else 1)
        own = make_head(head, width, len(id2label))
    elif head_bias:
        _add_head_bias(hf)
    clf = SequenceClassifier(hf, default_pooling(config) if pooling == "auto" else pooling, train_layers,
                             head=own, siamese=siamese)
    return clf, tok, path


def _add_head_bias(hf) -> None:
    for name in ("score", "classifier"):
        old = getattr(hf, name, None)
        if isinstance(old, torch.nn.Linear) and old.bias is None:
            new = torch.nn.Linear(old.in_features, old.out_features, bias=True)
            with torch.no_grad():
                new.weight.copy_(old.weight)
                new.bias.zero_()
            setattr(hf, name, new)
            return
