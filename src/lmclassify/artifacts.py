"""The output directory: a standard transformers model directory (config.json with
id2label/label2id, model.safetensors, tokenizer files) plus our metadata as JSON.

Any parameters plain transformers cannot hold (a learned attention-pooling query) go in
``lmclassify_extra.safetensors``; ``lmclassify.json`` says whether plain transformers
reproduces our predictions, and why not where it cannot.
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

from .config import ModelConfig, RunConfig, TrainConfig
from .errors import LmClassifyError

META = "lmclassify.json"
EXTRA = "lmclassify_extra.safetensors"
FORMAT = 1


def compatibility_notes(clf) -> list[str]:
    """Why plain ``transformers`` would classify differently, if it would."""
    mc, module, notes = clf.model_config, clf.module_, []
    if module.own_head:
        why = ("encoder classifiers use lmclassify's pooling and head" if module.backbone.encoder else
               "siamese pairs feed the head [u, v, |u-v|]" if module.siamese else f"the {mc.head} head is lmclassify's")
        notes.append(f"{why} (saved in {EXTRA}); plain transformers loads the backbone but not this head, "
                     "so it cannot reproduce these predictions: load with lmclassify")
    elif module.pooler.kind != "last":
        notes.append(f"pooling '{module.pooler.kind}' is not expressible in transformers "
                     "(it reads the last token); load with lmclassify")
    if mc.head_bias and not module.own_head:
        notes.append("the head has a bias, which transformers' *ForSequenceClassification drops on load")
    notes += clf.task_.compatibility_notes()
    if getattr(clf, "pairs_", False) and getattr(clf, "pair_template_", None):
        notes.append(f"text pairs are joined into one text as {clf.pair_template_!r}; give transformers "
                     "the joined text")
    return notes


def save_model_dir(directory: Path, clf, **extra_meta) -> Path:
    module, tok = clf.module_, clf.tokenizer_
    directory.mkdir(parents=True, exist_ok=True)
    module.hf.save_pretrained(directory, safe_serialization=True)
    if clf.model_config.max_length:
        tok.model_max_length = clf.model_config.max_length  # pipeline(truncation=True) then matches
    tok.save_pretrained(directory)
    # Only what the HF model does not already hold: our pooler's parameters, and our head
    # unless the head is the HF model's own score layer.
    keep = ("pooler.", "head.") if module.own_head else ("pooler.",)
    own = {k: v.contiguous() for k, v in module.state_dict().items() if k.startswith(keep)}
    if own:
        save_file(own, str(directory / EXTRA))
    meta = {
        "format": FORMAT,
        "task": clf.task_.name,
        "task_state": clf.task_.state(),
        "labels": None if clf.labels_ is None else clf.labels_.to_dict(),
        "positive_label": clf.positive_label,
        "head": clf.model_config.head if module.own_head else "transformers",
        "pairs": getattr(clf, "pairs_", False),
        "pair_mode": clf.model_config.pair_mode,
        "pair_template": getattr(clf, "pair_template_", None),
        "pooling": module.pooler.kind,
        "train_layers": module.train_layers,  # as trained ("auto" resolved per model kind)
        "head_bias": clf.model_config.head_bias,
        "max_length": clf.model_config.max_length,
        "input_template": getattr(clf.tokenizer_, "lmc_input_template", "none"),
        "base_model": clf.model_config.name,
        "transformers_compatible": not compatibility_notes(clf),
        "notes": compatibility_notes(clf),
        **extra_meta,
    }
    (directory / META).write_text(json.dumps(meta, indent=2, default=str) + "\n")
    RunConfig(model=clf.model_config, train=clf.train_config).save(directory / "training_config.json") \
        if not (directory / "training_config.json").exists() else None
    return directory


def read_meta(directory: Path) -> dict:
    """``lmclassify.json`` of a model directory, or the one-line error for a wrong directory."""
    path = Path(directory) / META
    if not path.is_file():
        raise LmClassifyError(f"{directory} is not an lmclassify model directory (no {META})")
    return json.loads(path.read_text())


def read_text_meta(directory: Path) -> dict:
    """``read_meta`` for the text-classification commands: a token classifier's directory
    gets pointed at the commands that serve it instead of failing deep inside loading."""
    meta = read_meta(directory)
    if meta.get("task") == "token_classification":
        raise LmClassifyError(f"{directory} holds a token classifier; use 'lmclassify predict-tokens' "
                              f"or 'lmclassify evaluate-tokens' for it")
    return meta


def input_columns(directory: Path, text_column: Optional[str], pair_column: Optional[str]
                  ) -> tuple[str, Optional[str]]:
    """The columns to read texts (and a pair model's second texts) from: as given, else as
    in training. A pair column for a single-text model is a mistake worth a clear error
    rather than silently ignoring the column."""
    meta = read_text_meta(directory)
    text = text_column or meta.get("text_column") or "text"
    if not meta.get("pairs"):
        if pair_column:
            raise LmClassifyError(f"{directory} classifies single texts; drop --text-pair-column")
        return text, None
    pair = pair_column or meta.get("text_pair_column")
    if not pair:
        raise LmClassifyError(f"{directory} classifies text pairs: name the second text's column "
                              f"with --text-pair-column")
    return text, pair


def load_into(clf, directory: Path, device: torch.device):
    """Fill a bare TextClassifier from a saved directory."""
    from transformers import AutoModelForSequenceClassification

    from .models.classifier import SequenceClassifier
    from .models.heads import make_head
    from .models.load import _add_head_bias, load_tokenizer
    from .training.tasks import task_from_saved

    meta = read_text_meta(directory)
    clf.positive_label = meta.get("positive_label")
    clf.task_ = task_from_saved(meta.get("task", "single_label_classification"), meta.get("labels"),
                                meta.get("task_state") or {}, clf.positive_label)
    clf.labels_ = clf.task_.labels
    clf.classes_ = clf.task_.classes
    clf.label_separator = getattr(clf.task_, "separator", ",")
    clf.model = str(directory)
    head = meta.get("head", "transformers")
    clf.pairs_ = bool(meta.get("pairs", False))
    clf.pair_template_ = meta.get("pair_template")
    siamese = clf.pairs_ and meta.get("pair_mode") == "siamese"
    clf.model_config = ModelConfig(name=str(directory), train_layers="head", pooling=meta["pooling"],
                                   head="linear" if head == "transformers" else head,
                                   head_bias=meta["head_bias"], max_length=meta["max_length"],
                                   task=clf.task_.kind, pair_mode=meta.get("pair_mode", "joint"))
    clf.train_config = TrainConfig()
    clf.progress = False
    clf.tokenizer_ = load_tokenizer(directory)  # its saved post-processor carries any input template
    clf.tokenizer_.lmc_input_template = meta.get("input_template", "none")
    hf = AutoModelForSequenceClassification.from_pretrained(directory, dtype=torch.float32)
    own = None
    if head != "transformers":
        width = hf.config.get_text_config().hidden_size * (3 if siamese else 1)
        own = make_head(head, width, hf.config.num_labels)
    elif meta["head_bias"]:
        _add_head_bias(hf)
        with safe_open(str(directory / "model.safetensors"), "pt") as f:
            for name in ("score", "classifier"):
                if f"{name}.bias" in f.keys():
                    getattr(hf, name).bias.data.copy_(f.get_tensor(f"{name}.bias"))
    module = SequenceClassifier(hf, meta["pooling"], "head", head=own, siamese=siamese)
    if (directory / EXTRA).is_file():
        missing, unexpected = module.load_state_dict(load_file(str(directory / EXTRA)), strict=False)
        if unexpected or any(k.startswith(("head.", "pooler.")) for k in missing):
            raise LmClassifyError(f"{directory / EXTRA} does not match this model (missing "
                                  f"{[k for k in missing if k.startswith(('head.', 'pooler.'))]}, "
                                  f"unexpected {unexpected}); the directory is corrupt")
    elif own is not None:
        raise LmClassifyError(f"{directory} lacks {EXTRA}, which holds this model's head")
    clf.module_ = module.to(device).eval()
    clf.device_ = device
    clf.feature_cache_ = False
    return clf


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
