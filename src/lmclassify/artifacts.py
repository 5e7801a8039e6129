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
from typing import Iterator

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from .config import ModelConfig, RunConfig, TrainConfig
from .data.labels import LabelMap
from .errors import LmClassifyError

META = "lmclassify.json"
EXTRA = "lmclassify_extra.safetensors"
FORMAT = 1


def compatibility_notes(clf) -> list[str]:
    """Why plain ``transformers`` would classify differently, if it would."""
    mc, notes = clf.model_config, []
    if clf.module_.backbone.encoder:
        notes.append("encoder classifiers use lmclassify's pooling and head; plain transformers "
                     "loads the backbone but not this head")
    elif clf.module_.pooler.kind != "last":
        notes.append(f"pooling '{clf.module_.pooler.kind}' is not expressible in transformers "
                     "(it reads the last token); load with lmclassify")
    if mc.head_bias:
        notes.append("the head has a bias, which transformers' *ForSequenceClassification drops on load")
    return notes


def save_model_dir(directory: Path, clf, **extra_meta) -> Path:
    module, tok = clf.module_, clf.tokenizer_
    directory.mkdir(parents=True, exist_ok=True)
    module.hf.save_pretrained(directory, safe_serialization=True)
    if clf.model_config.max_length:
        tok.model_max_length = clf.model_config.max_length  # pipeline(truncation=True) then matches
    tok.save_pretrained(directory)
    # Only what the HF model does not already hold (``head`` is the HF model's own score layer).
    own = {k: v.contiguous() for k, v in module.state_dict().items() if k.startswith("pooler.")}
    if own:
        save_file(own, str(directory / EXTRA))
    meta = {
        "format": FORMAT,
        "task": clf.task_.name,
        "labels": clf.labels_.to_dict(),
        "positive_label": clf.positive_label,
        "pooling": module.pooler.kind,
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


def load_into(clf, directory: Path, device: torch.device):
    """Fill a bare TextClassifier from a saved directory."""
    from transformers import AutoModelForSequenceClassification

    from .models.classifier import SequenceClassifier
    from .models.load import _add_head_bias, load_tokenizer
    from .training.tasks import SingleLabel

    meta_path = directory / META
    if not meta_path.is_file():
        raise LmClassifyError(f"{directory} is not an lmclassify model directory (no {META})")
    meta = json.loads(meta_path.read_text())
    clf.labels_ = LabelMap.from_dict(meta["labels"])
    clf.classes_ = list(clf.labels_.classes)
    clf.positive_label = meta.get("positive_label")
    clf.model = str(directory)
    clf.model_config = ModelConfig(name=str(directory), train_layers="head", pooling=meta["pooling"],
                                   head_bias=meta["head_bias"], max_length=meta["max_length"])
    clf.train_config = TrainConfig()
    clf.progress = False
    clf.tokenizer_ = load_tokenizer(directory)  # its saved post-processor carries any input template
    clf.tokenizer_.lmc_input_template = meta.get("input_template", "none")
    hf = AutoModelForSequenceClassification.from_pretrained(directory, dtype=torch.float32)
    if meta["head_bias"]:
        _add_head_bias(hf)
        with safe_open(str(directory / "model.safetensors"), "pt") as f:
            for name in ("score", "classifier"):
                if f"{name}.bias" in f.keys():
                    getattr(hf, name).bias.data.copy_(f.get_tensor(f"{name}.bias"))
    module = SequenceClassifier(hf, meta["pooling"], "head")
    if (directory / EXTRA).is_file():
        module.load_state_dict(load_file(str(directory / EXTRA)), strict=False)
    clf.module_ = module.to(device).eval()
    clf.device_ = device
    clf.task_ = SingleLabel(clf.labels_.id2label().values(), positive_label=clf._positive_id())
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
