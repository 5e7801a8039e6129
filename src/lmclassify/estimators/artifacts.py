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
import warnings
from pathlib import Path
from typing import Optional

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

from ..config import RunConfig, check_options
from ..errors import LmClassifyError, first_line
from ..models.adapters import ADAPTER_DIR, has_adapters, merged_state_dict, save_adapter
from ..models.heads import make_head
from ..models.hf_layout import fold_linear_head, seal, unsealed_config
from ..models.load import add_head_bias, load_tokenizer
from ..models.sequence import SequenceClassifier
from ..models.tagger import TokenTagger
from ..tasks import TOKEN, task_from_saved
from .checks import EXTRA, WEIGHTS, WEIGHTS_INDEX, check_files, corrupt, json_object, missing

META = "lmclassify.json"
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
    if module.pooler.normalize and not gaps:
        gaps.append("the pooled vector is L2-normalised before the head")
    if mc.head_bias and not module.own_head:
        gaps.append("the head has a bias, which transformers' *ForSequenceClassification drops on load")
    return gaps


def _fold(est) -> bool:
    """Write an encoder's linear head on [CLS] into transformers' own head, where its layout
    allows (``models/hf_layout.py``); the training-time head stays in ``EXTRA`` as well."""
    module = est.module_
    if est.task_.network == TOKEN or est.task_.kind != "single" or not module.own_head or module.siamese:
        return False
    if module.pooler.kind != "cls" or module.pooler.normalize or not isinstance(module.head, torch.nn.Linear):
        return False
    return fold_linear_head(module.hf, module.head.weight.detach().cpu(), module.head.bias.detach().cpu())


def _save_lora(directory: Path, est) -> Optional[str]:
    """Write the transformers weights: LoRA adapters merged into them (a plain directory),
    and with ``--save-adapter`` the peft adapter too; returns its folder's name, if any."""
    module, mc = est.module_, est.model_config_
    if not has_adapters(module):
        if mc.save_adapter:
            warnings.warn("--save-adapter: this model's adapters were merged when it was saved; only the merged "
                          "model is written", stacklevel=4)
        module.hf.save_pretrained(directory, safe_serialization=True)
        return None
    module.hf.save_pretrained(directory, safe_serialization=True, state_dict=merged_state_dict(module.hf))
    if not mc.save_adapter:
        return None
    # a folded encoder head lives in transformers' classifier and pooler: the adapter carries both
    folded = [getattr(module.hf, "classifier", None), getattr(module.backbone.base, "pooler", None)]
    save_adapter(module, directory / ADAPTER_DIR,
                 extra_modules=tuple(m for m in folded if isinstance(m, torch.nn.Module)) if est.folded_ else ())
    return ADAPTER_DIR


def save_model_dir(directory: Path, est, config: Optional[RunConfig] = None, **extra_meta) -> Path:
    """Write ``est`` into ``directory``; ``config`` (the job's full run config) is saved as
    ``training_config.json``, else one built from the estimator's own sections."""
    module, tok, mc, task = est.module_, est.tokenizer_, est.model_config_, est.task_
    directory.mkdir(parents=True, exist_ok=True)
    est.folded_ = _fold(est)
    extra_meta["adapter"] = _save_lora(directory, est)
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
    if getattr(mc, "long_text", "truncate") != "truncate" and not gaps:  # data/windows.py
        notes.append(f"texts past max_length {mc.max_length} are read {mc.long_text} by lmclassify; plain "
                     "transformers truncates them, so their labels can differ")
    if extra_meta.get("adapter"):
        notes.append(f"{extra_meta['adapter']}/ is the peft LoRA adapter (trained head and norm in "
                     f"modules_to_save): PeftModel.from_pretrained(<{mc.name} classifier>, DIR/{extra_meta['adapter']})"
                     + ("; the model's own head/pooling above is not in it" if gaps else ""))
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
    directory = Path(directory)
    if not directory.exists():
        raise LmClassifyError(f"{directory}: no such model directory; pass the directory `lmclassify train` wrote")
    if not directory.is_dir():
        raise LmClassifyError(f"{directory} is a file, not a model directory; pass the directory "
                              f"`lmclassify train` wrote")
    path = directory / META
    if not path.is_file():
        raise LmClassifyError(f"{directory} is not an lmclassify model directory (no {META})")
    meta = json_object(path)
    if meta.get("format") != FORMAT:
        raise LmClassifyError(f"{directory} was written by another lmclassify version (format "
                              f"{meta.get('format')}, this one reads {FORMAT}); retrain it with this version")
    for key, types in (("task", (str,)), ("labels", (dict, type(None))), ("task_state", (dict, type(None))),
                       ("notes", (list, type(None)))):
        if not isinstance(meta.get(key), types):
            raise corrupt(path, f"{key!r} is {json.dumps(meta.get(key))[:40]}")
    _saved_task(path, meta)  # the labels and task state must make a task
    return meta


def _saved_task(path: Path, meta: dict, positive_label=None):
    """The task ``lmclassify.json`` (at ``path``) describes; a broken description is one line."""
    try:
        return task_from_saved(meta["task"], meta.get("labels"), meta.get("task_state") or {}, positive_label)
    except LmClassifyError as e:
        raise LmClassifyError(f"{path}: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as e:
        raise corrupt(path, f"its labels or task state do not describe a {meta['task']} task: "
                             f"{type(e).__name__} {first_line(e)}") from None




def saved_config(directory: Path) -> RunConfig:
    """The resolved run config a model directory was trained with, checked like a new run's."""
    path = Path(directory) / CONFIG
    if not path.is_file():
        raise LmClassifyError(f"{directory} lacks {CONFIG}; the directory is incomplete")
    cfg = RunConfig.from_dict(json_object(path), str(path))
    try:
        check_options(cfg.model, cfg.train)
    except LmClassifyError as e:
        raise corrupt(path, str(e)) from None
    dc = cfg.data
    for key in ("text_column", "label_column", "label_separator", "text_pair_column"):
        v = getattr(dc, key)
        if not (isinstance(v, str) or (v is None and key == "text_pair_column")):
            raise corrupt(path, f"data.{key} is {json.dumps(v)[:40]}")
    return cfg


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
    directory = Path(directory)
    meta = read_meta(directory)
    cfg = saved_config(directory)
    mc = cfg.model
    task = _saved_task(directory / META, meta, cfg.data.positive_label)
    if task.network != cls.NETWORK:
        raise LmClassifyError(f"{directory} holds a {task.kind} model, not a {cls.NETWORK} one; load it with "
                              f"lmclassify.load(), or use the 'predict'/'evaluate' commands")
    est = cls().set_config(mc, cfg.train)
    est.progress = False
    words = task.network == TOKEN
    weights = check_files(directory)
    est.tokenizer_ = _restore_tokenizer(directory, words)  # its saved post-processor carries any input template
    hf = _restore_hf(directory, weights, words, task)
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
        module = SequenceClassifier(hf, mc.pooling, "head", head=own, siamese=siamese,
                                    normalize=mc.embedding_norm == "l2")
    extra = directory / EXTRA
    # lmclassify's own parameters: a learned pooling query, its own head, CRF transitions
    needed = [k for k in module.state_dict() if k.startswith(("pooler.", "crf."))
              or (own is not None and k.startswith("head."))]
    if extra.is_file():
        try:
            missing, unexpected = module.load_state_dict(load_file(str(extra)), strict=False)
        except (SafetensorError, OSError, RuntimeError, ValueError) as e:
            raise corrupt(extra, f"its tensors do not fit this model: {first_line(e)}") from None
        mine = [k for k in missing if k in needed]
        if unexpected or mine:
            raise corrupt(extra, f"it does not match this model: missing {mine}, unexpected {unexpected}")
    elif needed:
        raise LmClassifyError(f"{extra} is missing; it holds this model's "
                              f"{', '.join(sorted({k.split('.')[0] for k in needed}))} - the model directory is "
                              f"incomplete: copy it again or retrain")
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


def _restore_tokenizer(directory: Path, words: bool):
    """The saved tokenizer. lmclassify saves fast tokenizers (``tokenizer.json``) wherever one
    exists, so a fast tokenizer rebuilt without that file (from a vocabulary, or from
    nothing) is a tampered directory, not a fallback to take."""
    tok_config = json_object(directory / "tokenizer_config.json")
    fast_file = directory / "tokenizer.json"
    if fast_file.exists():
        json_object(fast_file)
    elif tok_config.get("backend") == "tokenizers":
        raise missing(fast_file)
    try:
        tok = load_tokenizer(directory, words=words)
    except LmClassifyError as e:
        names = "tokenizer.json, tokenizer_config.json" if fast_file.exists() else "tokenizer_config.json"
        why = first_line(e.__cause__) if e.__cause__ is not None else str(e)
        raise LmClassifyError(f"the tokenizer in {directory} ({names}) cannot be loaded: {why}; the model "
                              f"directory cannot be loaded - copy it again or retrain") from None
    if getattr(tok, "is_fast", False) and not fast_file.exists():
        raise missing(fast_file)
    return tok


def _restore_hf(directory: Path, weights: list[Path], words: bool, task):
    """The transformers model, from safetensors only, with every weight it expects."""
    auto = AutoModelForTokenClassification if words else AutoModelForSequenceClassification
    config = unsealed_config(directory)
    n = len(task.id2label())
    if getattr(config, "num_labels", None) != n:
        raise corrupt(directory / "config.json", f"{getattr(config, 'num_labels', None)} labels where "
                                                  f"{META} has {n}")
    named = weights[0] if len(weights) == 1 else directory / WEIGHTS_INDEX
    try:
        hf, info = auto.from_pretrained(directory, config=config, dtype=torch.float32, use_safetensors=True,
                                        output_loading_info=True)
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError, KeyError) as e:
        raise corrupt(named, f"the weights cannot be loaded: {first_line(e)}") from None
    problems = {k: sorted(v)[:3] for k, v in info.items() if k in ("missing_keys", "mismatched_keys") and v}
    if problems:
        raise corrupt(named, "; ".join(f"{k.replace('_', ' ')}: {', '.join(map(str, v))}"
                                        for k, v in problems.items()))
    return hf


def _restore_head_bias(hf, directory: Path) -> None:
    """transformers drops a bias its head does not have; put ours back from the weights file."""
    add_head_bias(hf)
    path = directory / WEIGHTS
    try:
        with safe_open(str(path), "pt") as f:
            for name in ("score", "classifier"):
                if f"{name}.bias" in f.keys():
                    getattr(hf, name).bias.data.copy_(f.get_tensor(f"{name}.bias"))
    except (SafetensorError, OSError, RuntimeError) as e:
        raise corrupt(path, f"the head's bias cannot be read: {first_line(e)}") from None
