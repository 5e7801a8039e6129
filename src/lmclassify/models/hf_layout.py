"""Keep saved directories honest towards plain ``transformers``.

An lmclassify directory is a transformers checkpoint, so ``pipeline("text-classification",
model=DIR)`` loads it. The rule: that pipeline either gives lmclassify's labels, or fails
to load. Two tools serve it:

* ``fold_linear_head`` writes lmclassify's linear head on the raw first-token state into
  transformers' own head, for the BERT- and RoBERTa-style layouts whose head is
  ``Linear(tanh(Linear(h_cls)))``: the inner Linear becomes ``eps * I`` and the outer one
  ``W / eps``, and ``tanh(eps h) / eps = h (1 - (eps h)^2 / 3 + ...)`` is ``h`` to fp32
  precision. ``eps = 2**-16``: a power of two makes both rescalings exact in binary
  floating point, leaving only the cubic term, (eps h)^2 / 3 <= 6e-8 (half an fp32 ulp)
  for |h| <= 28 and <= 1e-6 for |h| <= 113. Final encoder states are LayerNorm outputs,
  |h_i| <= |gamma_i| sqrt(H - 1) + |beta_i|, and in practice a few units (all-MiniLM-L6-v2:
  max |h_cls| 6.3 on varied text, LayerNorm bound 15.6). Measured there, every eps from
  2**-16 down to 2**-60 gives the same error as the plain fp32 head itself (8e-6 off
  float64 at |logit| 19); 1e-3 is 20x worse, and 1e-2 fails the check. float16 cannot hold
  the fold (eps * h is subnormal there, W / eps can pass 65504): load in float32/bfloat16.
* ``seal`` makes every other directory (mean/max/attention pooling, an MLP head, siamese
  pairs, a decoder head with a bias) fail in ``AutoConfig``, hence in
  ``AutoModel*.from_pretrained`` and ``pipeline``: ``model_type`` becomes ``"lmclassify"``,
  which transformers rejects with "The checkpoint you are trying to load has model type
  `lmclassify` but Transformers does not recognize this architecture. ...". The true type
  is kept under ``lmclassify_model_type``; ``unsealed_config`` rebuilds the real config for
  ``from_pretrained(DIR, config=...)``. ``AutoTokenizer`` still loads (it falls back to a
  generic config and takes the class from tokenizer_config.json's ``tokenizer_class``,
  which ``seal`` makes sure is there; pass ``config=unsealed_config(DIR)`` to skip the
  model-type warning). An explicit class, ``BertForSequenceClassification.from_pretrained
  (DIR)``, still loads with a warning naming `lmclassify`: a seal against Auto classes.

What ``pipeline("text-classification")`` does with other task shapes (transformers 5.24,
``TextClassificationPipeline.postprocess``):

* regression (``problem_type="regression"``, one output): no function applied, the score
  is the raw logit, label ``id2label[0]``; ``function_to_apply="none"`` gives the same. With
  one output and NO problem_type it applies a sigmoid instead.
* multi-label (``problem_type="multi_label_classification"``): an element-wise sigmoid,
  and by default only the top-1 label and its probability; ``top_k=None`` lists every label
  with its sigmoid, sorted. It never thresholds, so it never returns a label set.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

FOLD_EPS = 2.0 ** -16
SEALED_TYPE = "lmclassify"
TRUE_TYPE_KEY = "lmclassify_model_type"
REASON_KEY = "lmclassify_sealed"
CONFIG = "config.json"
TOKENIZER_CONFIG = "tokenizer_config.json"

PathLike = Union[str, Path]


# --- folding a linear head into transformers' tanh head ---------------------------------

def _tanh_head(hf_model: nn.Module) -> Optional[tuple[nn.Linear, nn.Linear]]:
    """The (inner, outer) Linears of a ``outer(tanh(inner(h_first)))`` head, found from the
    module structure alone (no per-model table), or None. Candidates only: the tanh of the
    RoBERTa layout is a function call, invisible here, so ``fold_linear_head`` verifies."""
    base = getattr(hf_model, "base_model", None)
    pooler = getattr(base, "pooler", None) if base is not hf_model else None
    classifier = getattr(hf_model, "classifier", None)
    if isinstance(classifier, nn.Linear) and pooler is not None:
        # BERT family: base.pooler = dense + Tanh module; ALBERT: base.pooler is the Linear
        # and base.pooler_activation the Tanh.
        if isinstance(getattr(pooler, "dense", None), nn.Linear) and isinstance(getattr(pooler, "activation", None), nn.Tanh):
            return pooler.dense, classifier
        if isinstance(pooler, nn.Linear) and isinstance(getattr(base, "pooler_activation", None), nn.Tanh):
            return pooler, classifier
    if isinstance(classifier, nn.Module) and not isinstance(classifier, nn.Linear):
        # RoBERTa family: classifier.dense -> torch.tanh -> classifier.out_proj. A head that
        # names another activation module (ELECTRA's gelu) is not linearisable this way.
        dense, out = getattr(classifier, "dense", None), getattr(classifier, "out_proj", None)
        act = getattr(classifier, "activation", None)
        if isinstance(dense, nn.Linear) and isinstance(out, nn.Linear) and (act is None or isinstance(act, nn.Tanh)):
            return dense, out
    return None


@torch.no_grad()
def _reproduces(hf_model: nn.Module, weight: torch.Tensor, bias: torch.Tensor) -> bool:
    """Does the model's own forward give ``weight @ h_first + bias``? Checked end to end on a
    short synthetic input against the base model's last hidden state, so a layout that looks
    right but computes something else (another activation, another token) is caught. The
    tolerance (1e-4 of sum |W_ij h_j| + |b_i|) is ~1000x the fold's error and far below the
    O(1) error of a wrong layout."""
    cfg = hf_model.config.get_text_config() if hasattr(hf_model.config, "get_text_config") else hf_model.config
    device = next(hf_model.parameters()).device
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(min(int(getattr(cfg, "vocab_size", 100) or 100), 1000), (2, 12), generator=g).to(device)
    mask = torch.ones_like(ids)
    was_training = hf_model.training
    hf_model.eval()
    try:
        logits = hf_model(input_ids=ids, attention_mask=mask).logits.double()
        h = hf_model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0].double()
    finally:
        hf_model.train(was_training)
    w, b = weight.to(device).double(), bias.to(device).double()
    scale = h.abs() @ w.abs().T + b.abs()
    return bool(((logits - (h @ w.T + b)).abs() <= 1e-4 * scale + 1e-6).all())


@torch.no_grad()
def fold_linear_head(hf_model: nn.Module, weight: torch.Tensor, bias: Optional[torch.Tensor],
                     eps: float = FOLD_EPS) -> bool:
    """Make ``hf_model``'s own classification head compute ``weight @ h_first + bias`` on the
    raw first-token state ``h_first`` (lmclassify's ``cls`` pooling + linear head), so its
    saved directory classifies like lmclassify in plain transformers.

    ``weight`` (C, H), ``bias`` (C,) or None. Works in place on a float32/float64
    ``*ForSequenceClassification`` whose head is ``outer(tanh(inner(h_first)))`` (BERT,
    RoBERTa families; see the module docstring for why eps = 2**-16) and returns True after
    checking the model's forward reproduces the head; returns False, with the model
    unchanged, for any other layout (DistilBERT, ELECTRA's gelu head, decoders' ``score``).
    Only the head changes: lmclassify's ``cls`` pooling reads the last hidden state, which
    the folded pooler does not touch. But the folded ``classifier`` holds ``W / eps``, so
    lmclassify must keep reading its own head (``lmclassify_extra.safetensors``), never use
    that Linear as a head on the raw state.
    """
    found = _tanh_head(hf_model)
    if found is None:
        return False
    inner, outer = found
    C, H = weight.shape
    if inner.weight.shape != (H, H) or outer.weight.shape != (C, H):
        raise ValueError(f"head shape {tuple(weight.shape)} does not fit the model's head "
                         f"({tuple(inner.weight.shape)} -> {tuple(outer.weight.shape)})")
    dtype = outer.weight.dtype
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"fold in float32 (the model is {dtype}): the check needs its precision")
    if bias is None:
        bias = torch.zeros(C)
    if outer.bias is None and bool(bias.ne(0).any()):
        return False
    saved = [p.detach().clone() for p in (inner.weight, inner.bias, outer.weight, outer.bias) if p is not None]
    inner.weight.copy_(torch.eye(H, dtype=dtype) * eps)  # eps a power of two: exact
    if inner.bias is not None:
        inner.bias.zero_()
    outer.weight.copy_(weight.to(dtype) / eps)
    if outer.bias is not None:
        outer.bias.copy_(bias.to(dtype))
    if _reproduces(hf_model, weight, bias):
        return True
    for p, old in zip([p for p in (inner.weight, inner.bias, outer.weight, outer.bias) if p is not None], saved):
        p.copy_(old)
    return False


# --- sealing directories plain transformers would misread -------------------------------

def _read_config(directory: PathLike) -> dict:
    return json.loads((Path(directory) / CONFIG).read_text(encoding="utf-8"))


def _write_json(path: Path, data: dict) -> None:
    """Write via a temporary sibling and rename, so a crash never leaves half a config."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _pin_tokenizer_class(directory: Path) -> None:
    """Record the tokenizer's class in tokenizer_config.json while the config is still real:
    on a sealed directory AutoTokenizer cannot read the model type, and without a recorded
    class it would fall back to the generic backend."""
    path = directory / TOKENIZER_CONFIG
    if not path.is_file():
        return
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("tokenizer_class"):
        return
    from transformers import AutoTokenizer

    data["tokenizer_class"] = type(AutoTokenizer.from_pretrained(directory)).__name__
    _write_json(path, data)


def is_sealed(directory: PathLike) -> bool:
    """Whether ``seal`` has marked this directory (plain transformers refuses it)."""
    path = Path(directory) / CONFIG
    return path.is_file() and _read_config(directory).get("model_type") == SEALED_TYPE


def seal(directory: PathLike, reason: str) -> None:
    """Make ``AutoConfig``/``AutoModel*``/``pipeline`` refuse ``directory`` with an error
    naming lmclassify, because transformers would load it but classify differently
    (``reason`` says why; it is kept in config.json under ``lmclassify_sealed``). Idempotent;
    the tokenizer stays loadable and ``unsealed_config`` gives the real config back."""
    directory = Path(directory)
    data = _read_config(directory)
    if data.get("model_type") != SEALED_TYPE:
        if not data.get("model_type"):
            raise ValueError(f"{directory / CONFIG} has no model_type to seal")
        _pin_tokenizer_class(directory)
        data[TRUE_TYPE_KEY] = data["model_type"]
        data["model_type"] = SEALED_TYPE
    data[REASON_KEY] = reason
    _write_json(directory / CONFIG, data)


def unsealed_config(directory: PathLike):
    """The directory's real ``PretrainedConfig``, sealed or not, for
    ``AutoModelForSequenceClassification.from_pretrained(directory, config=...)``.

    A missing, unreadable or malformed config.json (or one whose model type transformers
    does not know) is one ``LmClassifyError`` naming the file."""
    from transformers import AutoConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    from ..errors import LmClassifyError, first_line

    path = Path(directory) / CONFIG
    if not path.is_file():
        raise LmClassifyError(f"{path} is missing; the model directory is incomplete")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LmClassifyError(f"{path} is corrupt ({type(e).__name__}: {first_line(e)}); the model directory "
                              f"cannot be loaded") from None
    if not isinstance(data, dict):
        raise LmClassifyError(f"{path} is corrupt (expected a JSON object, found {type(data).__name__})")
    try:
        if data.get("model_type") != SEALED_TYPE:
            return AutoConfig.from_pretrained(directory)
        data.pop(REASON_KEY, None)
        data["model_type"] = data.pop(TRUE_TYPE_KEY, None)
        if data["model_type"] not in CONFIG_MAPPING:
            raise ValueError(f"unknown model type {data['model_type']!r}")
        config = CONFIG_MAPPING[data["model_type"]].from_dict(data)
    except Exception as e:  # noqa: BLE001 - whatever a config's own validation raises, the file is at fault
        raise LmClassifyError(f"{path} does not describe a model transformers can build ({first_line(e)}); "
                              f"the model directory cannot be loaded") from None
    config._name_or_path = str(directory)
    return config


