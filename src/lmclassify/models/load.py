"""Build a classifier from a model argument: resolve, load tokenizer and weights, fix padding."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from ..errors import LmClassifyError
from .backbone import is_encoder
from .classifier import SequenceClassifier
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


def build_classifier(model: str, id2label: dict[int, str], train_layers: Union[int, str] = 1,
                     pooling: str = "auto", head_bias: bool = False, seed: Optional[int] = None,
                     input_template: str = "auto") -> tuple[SequenceClassifier, object, Path]:
    """Load ``model`` with a fresh classification head (N(0, 0.02) init, seeded)."""
    path = resolve_model(model)
    tok = load_tokenizer(path)
    config = AutoConfig.from_pretrained(path)
    tok.lmc_input_template = apply_input_template(tok, input_template, is_encoder(config))
    config.num_labels = len(id2label)
    config.id2label = {int(k): v for k, v in id2label.items()}
    config.label2id = {v: int(k) for k, v in id2label.items()}
    config.pad_token_id = tok.pad_token_id
    config.problem_type = "single_label_classification"
    if seed is not None:
        torch.manual_seed(seed)  # the head's initialisation
    try:
        hf = AutoModelForSequenceClassification.from_pretrained(path, config=config, dtype=torch.float32)
    except ValueError as e:
        raise LmClassifyError(f"{model}: transformers has no sequence-classification model for it ({e})") from e
    if head_bias:
        _add_head_bias(hf)
    clf = SequenceClassifier(hf, default_pooling(config) if pooling == "auto" else pooling, train_layers)
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
