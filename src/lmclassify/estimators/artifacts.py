"""The one output directory format, for every task: a transformers model directory
(config.json with id2label/label2id, model.safetensors, tokenizer files), our metadata
(``lmclassify.json``: task, labels, task state, what transformers can reproduce) and the
resolved run config (``training_config.json``: the source of truth for loading).

Parameters plain transformers cannot hold (a learned attention-pooling query, an MLP or
siamese head, CRF transitions) go in ``lmclassify_extra.safetensors``. Plain
``transformers.pipeline`` on the directory either gives lmclassify's labels or refuses to
load (``models/hf_layout.py``): an encoder's linear head on [CLS] is folded into
transformers' own head; everything transformers would misread is sealed.
"""
from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

from ..config import RunConfig
from ..errors import LmClassifyError
from ..models.heads import make_head
from ..models.hf_layout import fold_linear_head, seal, unsealed_config
from ..models.load import add_head_bias, load_tokenizer
from ..models.sequence import SequenceClassifier
from ..models.tagger import TokenTagger
from ..tasks import TOKEN, task_from_saved

META = "lmclassify.json"
EXTRA = "lmclassify_extra.safetensors"
CONFIG = "training_config.json"
FORMAT = 2


def transformers_gaps(est) -> list[str]:
    """Why plain transformers would answer differently from lmclassify (then the directory
    is sealed); empty when ``pipeline`` gives the same labels."""
    mc, module, gaps = est.model_config_, est.module_, []
    task = est.task_
    if task.network == TOKEN:
        if module.own_head:
            gaps.append(f"the {mc.head} head is lmclassify's")
        if module.crf is not None:
            gaps.append("tags come from a CRF's Viterbi path, which transformers' per-token argmax does not follow")
        return gaps
    if task.kind == "multi":
        gaps.append("multi-label decisions use per-label thresholds tuned on validation; transformers' pipeline "
                    "returns the top label only")
    if task.kind == "regression":
        gaps.append("regression outputs are standardised; lmclassify maps them back to the targets' units")
    if module.siamese:
        gaps.append("siamese pairs feed the head [u, v, |u-v|]")
    elif module.own_head and not est.folded_:
        gaps.append(f"the {mc.head} head on '{module.pooler.kind}' pooling is lmclassify's")
    elif not module.own_head and module.pooler.kind != "last":
        gaps.append(f"pooling '{module.pooler.kind}' is not expressible in transformers (it reads the last token)")
    if mc.head_bias and not module.own_head:
        gaps.append("the head has a bias, which transformers' *ForSequenceClassification drops on load")
    return gaps


def _fold(est) -> bool:
    """Write an encoder's linear head on [CLS] into transformers' own head, where its layout
    allows (``models/hf_layout.py``); the training-time head stays in ``EXTRA`` as well."""
    module = est.module_
    if est.task_.network == TOKEN or est.task_.kind != "single" or not module.own_head or module.siamese:
        return False
    if module.pooler.kind != "cls" or not isinstance(module.head, torch.nn.Linear):
        return False
    return fold_linear_head(module.hf, module.head.weight.detach().cpu(), module.head.bias.detach().cpu())


def save_model_dir(directory: Path, est, config: Optional[RunConfig] = None, **extra_meta) -> Path:
    """Write ``est`` into ``directory``; ``config`` (the job's full run config) is saved as
    ``training_config.json``, else one built from the estimator's own sections."""
    module, tok, mc, task = est.module_, est.tokenizer_, est.model_config_, est.task_
    directory.mkdir(parents=True, exist_ok=True)
    est.folded_ = _fold(est)
    module.hf.save_pretrained(directory, safe_serialization=True)
    if mc.max_length:
        tok.model_max_length = mc.max_length  # pipeline(truncation=True) then matches
    tok.save_pretrained(directory)
    keep = ("pooler.", "head.", "crf.") if module.own_head else ("pooler.", "crf.")
    own = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items() if k.startswith(keep)}
    if own:
        save_file(own, str(directory / EXTRA))
    gaps = transformers_gaps(est)
    if gaps:
        seal(directory, "; ".join(gaps))
    notes = [f"plain transformers refuses this directory (config.json model_type 'lmclassify') because "
             f"{'; '.join(gaps)}: load it with lmclassify"] if gaps else []
    notes += task.compatibility_notes() if not gaps else []
    if est.pairs_ and est.pair_template_ and not gaps:
        notes.append(f"text pairs are joined into one text as {est.pair_template_!r}; give transformers "
                     "the joined text")
    meta = {
        "format": FORMAT,
        "task": task.name,
        "task_state": task.state(),
        "labels": None if task.labels is None else task.labels.to_dict(),
        "own_head": module.own_head,
        "folded_head": est.folded_,
        "pairs": est.pairs_,
        "pair_template": est.pair_template_,
        "input_template": est.input_template_,
        "base_model": mc.name,
        "transformers_compatible": not gaps,
        "notes": notes,
        **extra_meta,
    }
    (directory / META).write_text(json.dumps(meta, indent=2, default=str) + "\n")
    config = config or RunConfig(model=mc, data=est.data_config(), train=est.train_config_)
    config.save(directory / CONFIG)
    return directory


def read_meta(directory: Path) -> dict:
    """``lmclassify.json`` of a model directory, or the one-line error for a wrong directory."""
    path = Path(directory) / META
    if not path.is_file():
        raise LmClassifyError(f"{directory} is not an lmclassify model directory (no {META})")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LmClassifyError(f"{path} is corrupt ({e}); the directory cannot be loaded") from None
    if meta.get("format") != FORMAT:
        raise LmClassifyError(f"{directory} was written by another lmclassify version (format "
                              f"{meta.get('format')}, this one reads {FORMAT}); retrain it with this version")
    return meta


def saved_config(directory: Path) -> RunConfig:
    """The resolved run config a model directory was trained with."""
    path = Path(directory) / CONFIG
    if not path.is_file():
        raise LmClassifyError(f"{directory} lacks {CONFIG}; the directory is incomplete")
    return RunConfig.load(path)


def saved_network(directory: Path) -> str:
    """'sequence' or 'token': which estimator a directory holds."""
    meta = read_meta(directory)
    return task_from_saved(meta["task"], meta.get("labels"), meta.get("task_state") or {}).network


def input_columns(directory: Path, text_column: Optional[str], pair_column: Optional[str]
                  ) -> tuple[str, Optional[str]]:
    """The columns to read texts (and a pair model's second texts) from: as given, else as
    in training. A pair column for a single-text model is a mistake worth a clear error
    rather than silently ignoring the column."""
    meta, data = read_meta(directory), saved_config(directory).data
    text = text_column or data.text_column
    if not meta.get("pairs"):
        if pair_column:
            raise LmClassifyError(f"{directory} classifies single texts; drop --text-pair-column")
        return text, None
    pair = pair_column or data.text_pair_column
    if not pair:
        raise LmClassifyError(f"{directory} classifies text pairs: name the second text's column "
                              f"with --text-pair-column")
    return text, pair


def restore(cls, directory: Path, device: torch.device):
    """An estimator of class ``cls`` loaded from ``directory``: parameters from the saved
    config, learned state from the weights and ``lmclassify.json``."""
    meta = read_meta(directory)
    cfg = saved_config(directory)
    mc = cfg.model
    task = task_from_saved(meta["task"], meta.get("labels"), meta.get("task_state") or {}, cfg.data.positive_label)
    if task.network != cls.NETWORK:
        raise LmClassifyError(f"{directory} holds a {task.kind} model, not a {cls.NETWORK} one; load it with "
                              f"lmclassify.load(), or use the 'predict'/'evaluate' commands")
    est = cls().set_config(mc, cfg.train)
    est.progress = False
    words = task.network == TOKEN
    est.tokenizer_ = load_tokenizer(directory, words=words)  # its saved post-processor carries any input template
    auto = AutoModelForTokenClassification if words else AutoModelForSequenceClassification
    try:
        hf = auto.from_pretrained(directory, config=unsealed_config(directory), dtype=torch.float32)
    except (OSError, ValueError, RuntimeError) as e:
        raise LmClassifyError(f"{directory}: the model weights cannot be loaded ({str(e).splitlines()[0]}); "
                              f"the directory is corrupt") from None
    pairs = bool(meta.get("pairs"))
    siamese = pairs and mc.pair_mode == "siamese"
    own = None
    if meta.get("own_head"):
        width = hf.config.get_text_config().hidden_size * (3 if siamese else 1)
        own = make_head(mc.head, width, hf.config.num_labels)
    if words:
        module = TokenTagger(hf, "head", crf=mc.crf, head=own)
    else:
        if mc.head_bias and own is None:
            _restore_head_bias(hf, directory)
        module = SequenceClassifier(hf, mc.pooling, "head", head=own, siamese=siamese)
    extra = directory / EXTRA
    if extra.is_file():
        missing, unexpected = module.load_state_dict(load_file(str(extra)), strict=False)
        mine = [k for k in missing if k.startswith(("head.", "pooler.", "crf."))
                and (own is not None or not k.startswith("head."))]
        if unexpected or mine:
            raise LmClassifyError(f"{extra} does not match this model (missing {mine}, unexpected {unexpected}); "
                                  f"the directory is corrupt")
    elif own is not None or (words and mc.crf):
        raise LmClassifyError(f"{directory} lacks {EXTRA}, which holds this model's head; the directory is corrupt")
    est.module_ = module.to(device).eval()
    est.device_ = device
    est.task_ = task
    task.attach(module)
    est.classes_ = task.classes
    est.model_config_, est.train_config_ = mc, cfg.train
    est.input_template_ = meta.get("input_template", "none")
    est.folded_ = bool(meta.get("folded_head"))
    est.feature_cache_ = False
    est._restored(meta, cfg.data)
    return est


def _restore_head_bias(hf, directory: Path) -> None:
    """transformers drops a bias its head does not have; put ours back from the weights file."""
    add_head_bias(hf)
    with safe_open(str(directory / "model.safetensors"), "pt") as f:
        for name in ("score", "classifier"):
            if f"{name}.bias" in f.keys():
                getattr(hf, name).bias.data.copy_(f.get_tensor(f"{name}.bias"))


@contextmanager
def staged_output(output: Path, overwrite: bool) -> Iterator[Path]:
    """Write into a temporary sibling and rename into place only when all is written, so
    a failed run leaves nothing behind and an existing directory is never half-replaced."""
    output = Path(output)
    if output.exists() and not overwrite:
        raise LmClassifyError(f"output directory {output} exists; pass --overwrite to replace it")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if output.exists():
        old = output.with_name(f".{output.name}.old-{os.getpid()}")
        os.replace(output, old)
        os.replace(tmp, output)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, output)
