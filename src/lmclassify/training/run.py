"""The `train` job as an importable function: data -> fit -> evaluate -> artifacts.

Returns a dict (the CLI prints it); writes everything into a staged directory that is
renamed into place only when complete.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Optional

from ..artifacts import compatibility_notes, staged_output
from ..classifier import TextClassifier
from ..config import DataConfig, RunConfig
from ..data.examples import Examples
from ..data.readers import read_examples
from ..data.recipes import get_recipe
from ..data.splits import split, undersample
from ..errors import LmClassifyError
from ..evaluation.metrics import MetricsLog, read_metrics_log
from ..evaluation.plots import plot_confusion_matrix, plot_training_curves
from ..evaluation.report import render_report, write_report


def apply_recipe(cfg: RunConfig, overrides: Optional[dict] = None) -> RunConfig:
    """A recipe fills the data section and the training defaults it was published with;
    explicit options (``overrides``) still win."""
    if not cfg.data.recipe:
        return cfg
    r = get_recipe(cfg.data.recipe)
    data = replace(cfg.data, split=r.split, balance=r.balance, positive_label=r.positive_label)
    model_keys = {"train_layers"}
    train = replace(cfg.train, **{k: v for k, v in r.defaults.items() if k not in model_keys})
    model = replace(cfg.model, **{k: v for k, v in r.defaults.items() if k in model_keys})
    cfg = RunConfig(model=model, data=data, train=train)
    for section, values in (overrides or {}).items():
        setattr(cfg, section, replace(getattr(cfg, section), **values))
    return cfg


def load_splits(dc: DataConfig, seed: int) -> tuple[Examples, Optional[Examples], Optional[Examples]]:
    """Either one file (or recipe) split by ``dc.split``, or separate train/validation/test files."""
    read = lambda p: read_examples(p, dc.text_column, dc.label_column)  # noqa: E731
    if dc.recipe:
        full = get_recipe(dc.recipe).load()
    elif dc.data:
        full = read(dc.data)
    elif dc.train:
        train = read(dc.train)
        if dc.balance == "undersample":
            train = undersample(train, seed)
        return train, read(dc.validation) if dc.validation else None, read(dc.test) if dc.test else None
    else:
        raise LmClassifyError("no data: pass --data FILE, --train FILE or --recipe NAME")
    if dc.balance == "undersample":
        full = undersample(full, seed)
    train, val, test = split(full, tuple(dc.split), seed)
    return train, val or None, test or None


def run_training(cfg: RunConfig, output: Path, overwrite: bool = False, progress: bool = True) -> dict:
    """Train, evaluate on every split, and write the model directory. Returns the metrics."""
    with staged_output(Path(output), overwrite) as tmp:
        train, val, test = load_splits(cfg.data, cfg.train.seed)
        if progress:
            sizes = ", ".join(f"{n} {len(s)}" for n, s in (("train", train), ("validation", val), ("test", test)) if s)
            print(f"data: {sizes}")
        log = MetricsLog(tmp / "metrics.jsonl")
        clf = TextClassifier(model_config=cfg.model, train_config=cfg.train,
                             positive_label=cfg.data.positive_label, progress=progress)
        clf.fit(train.texts, train.labels, validation=(val.texts, val.labels) if val else None, log=log.log)
        metrics = {}
        for name, ex in (("train", train), ("validation", val), ("test", test)):
            if ex is not None and len(ex):
                metrics[name] = clf.evaluate(ex.texts, ex.labels, split=name)
        fr = clf.fit_result_
        metrics.update(train_seconds=round(clf.train_seconds_, 3), parameters=clf.parameter_counts_,
                       feature_cache=clf.feature_cache_, steps=fr.steps, best_step=fr.best_step,
                       stopped_early=fr.stopped_early, train_tokens=fr.train_tokens)
        clf.save(tmp)
        cfg.save(tmp / "training_config.json")
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        last = metrics.get("test") or metrics.get("validation") or metrics["train"]
        plots = plot_training_curves(read_metrics_log(tmp / "metrics.jsonl"), tmp)
        plots.append(plot_confusion_matrix(last["confusion_matrix"], last["labels"], tmp / "confusion_matrix.png"))
        notes = compatibility_notes(clf) or [
            "loads with plain transformers: pipeline('text-classification', model=DIR) gives the same labels"]
        report = render_report(metrics, cfg.to_dict(), title=f"lmclassify: {cfg.model.name} on "
                               f"{cfg.data.recipe or cfg.data.data or cfg.data.train}",
                               notes=notes, plots=[p.name for p in plots])
        write_report(tmp / "report.md", report)
    return {"output": str(output), "metrics": metrics}
