"""Build a network for a task from a model argument: resolve, load tokenizer and weights
with a fresh head, fix padding, and say how long a text the model can read."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch
from safetensors import SafetensorError
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoModelForTokenClassification, \
    AutoTokenizer

from ..errors import LmClassifyError, first_line
from ..networks import TOKEN
from .adapters import LoraSettings, add_lora, lora_train_layers
from .backbone import is_encoder, num_layers
from .heads import make_head
from .input_template import apply_input_template
from .resolve import BUILTIN_MODELS, resolve_model
from .sequence import SequenceClassifier
from .tagger import TokenTagger


def load_tokenizer(path: Union[str, Path], words: bool = False):
    """A fast tokenizer with a pad token, padding on the right. Decoders without one (GPT-2)
    pad with EOS, which is safe because the model finds the last real token from the mask.

    ``words``: the tokenizer reads pre-split words (token tasks), which needs a fast
    tokenizer (to map pieces to words) and, for byte-level BPE (GPT-2, RoBERTa), a space
    before every word, or 'world' in ['Hello', 'world'] becomes another token than in
    'Hello world'."""
    try:
        tok = AutoTokenizer.from_pretrained(path)
        if words and getattr(tok, "add_prefix_space", None) is False:
            tok = AutoTokenizer.from_pretrained(path, add_prefix_space=True)
    except Exception as e:  # tokenizers, sentencepiece and JSON errors alike: the files are the user's
        raise LmClassifyError(f"could not load a tokenizer from {path}: {first_line(e)}") from e
    if words and not tok.is_fast:
        raise LmClassifyError(f"{path}: token classification needs a fast tokenizer (tokenizer.json) to map "
                              f"sub-word pieces to words")
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise LmClassifyError(f"tokenizer in {path} has neither a pad nor an EOS token")
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    return tok


def load_config(path: Union[str, Path]):
    """A model directory's ``AutoConfig``, or one line naming its config.json."""
    try:
        return AutoConfig.from_pretrained(path)
    except Exception as e:  # noqa: BLE001 - whatever a config's own validation raises, the file is at fault
        raise LmClassifyError(f"{Path(path) / 'config.json'}: not a config transformers can read "
                              f"({first_line(e)})") from None


def family(config) -> str:
    """'encoder' (reads both ways) or 'decoder': what the family defaults are keyed on."""
    return "encoder" if is_encoder(config) else "decoder"


def model_family(model: str) -> str:
    """The family of a model argument, from its config alone (no weights loaded; a built-in
    model's family is known without unpacking its GGUF)."""
    if model in BUILTIN_MODELS:
        return BUILTIN_MODELS[model].family
    return family(load_config(resolve_model(model)))


def position_limit(config, tokenizer=None) -> Optional[int]:
    """The most tokens the model can read: its position table (and the tokenizer's stated
    limit, which is smaller where positions are offset, as in RoBERTa)."""
    limits = [getattr(config.get_text_config(), "max_position_embeddings", None)]
    tok_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_limit, int) and tok_limit < 1_000_000:
        limits.append(tok_limit)
    limits = [x for x in limits if isinstance(x, int) and x > 0]
    return min(limits) if limits else None


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
    """``--train-layers auto``: an int or 'all'/'head' for the network."""
    value = ENCODER_TRAIN_LAYERS if is_encoder(config) else DECODER_TRAIN_LAYERS
    return num_layers(config) if value == "blocks" else value


def needs_own_head(encoder: bool, head: str, siamese: bool) -> bool:
    """Only a decoder's plain linear head on one sequence is transformers' ``score`` layer;
    BERT-style models' own head sits on a tanh pooler we do not use."""
    return encoder or head != "linear" or siamese


@dataclass
class Built:
    """A fresh network and what else the estimator keeps from building it."""

    network: nn.Module
    tokenizer: object
    input_template: str  # the frame installed in the tokenizer: "chat" or "none"
    family: str  # "encoder" | "decoder"
    position_limit: Optional[int]


def build_network(network: str, model: str, id2label: dict[int, str], *, train_layers: Union[int, str] = 1,
                  pooling: str = "auto", head: str = "linear", head_bias: bool = False, crf: bool = False,
                  siamese: bool = False, input_template: str = "auto", embedding_norm: str = "none",
                  problem_type: Optional[str] = None, seed: Optional[int] = None,
                  lora: Optional[LoraSettings] = None) -> Built:
    """Load ``model`` with a fresh head for ``id2label`` (N(0, 0.02) init, seeded):
    a ``SequenceClassifier`` (one output per text) or a ``TokenTagger`` (per token).
    ``problem_type`` is transformers' name for the task, written into config.json.
    ``train_layers="lora"``: LoRA adapters (``lora``, default settings if None) on the top
    blocks, ``models/adapters.py``. ``embedding_norm="l2"``: unit-length pooled vectors
    (anything else, e.g. an older directory's unresolved "auto": as they come)."""
    path = resolve_model(model)
    words = network == TOKEN
    tok = load_tokenizer(path, words=words)
    config = load_config(path)
    encoder = is_encoder(config)
    template = "none" if words else apply_input_template(tok, input_template, encoder)
    config.num_labels = len(id2label)
    config.id2label = {int(k): v for k, v in id2label.items()}
    config.label2id = {v: int(k) for k, v in id2label.items()}
    config.pad_token_id = tok.pad_token_id
    if problem_type:
        config.problem_type = problem_type
    if train_layers == "auto":
        train_layers = default_train_layers(config)
    if train_layers == "lora":
        lora = lora or LoraSettings()
        train_layers = lora_train_layers(lora, num_layers(config))  # the adapted blocks are the network's top
    else:
        lora = None
    auto = AutoModelForTokenClassification if words else AutoModelForSequenceClassification
    if seed is not None:
        torch.manual_seed(seed)  # the head's initialisation
    try:  # safetensors only: a pickled checkpoint can run code when loaded
        hf = auto.from_pretrained(path, config=config, dtype=torch.float32, use_safetensors=True)
    except ValueError as e:
        what = "token" if words else "sequence"
        raise LmClassifyError(f"{model}: transformers has no {what}-classification model for it "
                              f"({first_line(e)})") from e
    except (OSError, SafetensorError) as e:  # no model.safetensors, or one that cannot be read
        raise LmClassifyError(f"{model}: its safetensors weights cannot be loaded ({first_line(e)})") from e
    width = config.get_text_config().hidden_size
    own = None
    if words:
        if head != "linear":
            if seed is not None:
                torch.manual_seed(seed)
            own = make_head(head, width, len(id2label))
        net: nn.Module = TokenTagger(hf, train_layers, crf=crf, head=own)
    else:
        if needs_own_head(encoder, head, siamese):
            if seed is not None:
                torch.manual_seed(seed)
            own = make_head(head, width * (3 if siamese else 1), len(id2label))
        elif head_bias:
            add_head_bias(hf)
        net = SequenceClassifier(hf, default_pooling(config) if pooling == "auto" else pooling, train_layers,
                                 head=own, siamese=siamese, normalize=embedding_norm == "l2")
    if lora is not None:
        if seed is not None:
            torch.manual_seed(seed)  # the adapters' initialisation
        add_lora(net, lora)
    return Built(net, tok, template, family(config), position_limit(config, tok))


def add_head_bias(hf) -> None:
    """Give transformers' bias-free ``score``/``classifier`` Linear a zero bias."""
    for name in ("score", "classifier"):
        old = getattr(hf, name, None)
        if isinstance(old, torch.nn.Linear) and old.bias is None:
            new = torch.nn.Linear(old.in_features, old.out_features, bias=True)
            with torch.no_grad():
                new.weight.copy_(old.weight)
                new.bias.zero_()
            setattr(hf, name, new)
            return
