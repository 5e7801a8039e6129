"""The `train` job as an importable function: data -> fit -> evaluate -> artifacts.

Returns a dict (the CLI prints it); writes everything into a staged directory that is
renamed into place only when complete.
"""
from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path
from typing import Optional

from ..artifacts import compatibility_notes, staged_output
from ..classifier import TextClassifier
from ..config import DataConfig, ModelConfig, RunConfig, TrainConfig
from ..data.examples import Examples
from ..data.readers import read_examples
from ..data.recipes import get_recipe
from ..data.splits import split, undersample
from ..errors import LmClassifyError
from ..evaluation.metrics import MetricsLog, read_metrics_log
from ..evaluation.plots import plot_confusion_matrix, plot_training_curves
from ..evaluation.report import render_report, write_report
from .tasks import make_task


def _section_of(key: str) -> str:
    for section, t in (("model", ModelConfig), ("data", DataConfig), ("train", TrainConfig)):
        if key in {f.name for f in fields(t)}:
            return section
    raise ValueError(f"recipe default {key!r} is not a config option")


def apply_recipe(cfg: RunConfig, overrides: Optional[dict] = None) -> RunConfig:
    """A recipe fills the data section, its task shape and the options it was tuned with
    (any section); explicit options (``overrides``) still win."""
    if not cfg.data.recipe:
        return cfg
    r = get_recipe(cfg.data.recipe)
    sections = {"model": replace(cfg.model, task=r.task), "train": cfg.train,
                "data": replace(cfg.data, split=r.split, balance=r.balance, positive_label=r.positive_label)}
    for key, value in r.defaults.items():
        section = _section_of(key)
        sections[section] = replace(sections[section], **{key: value})
    cfg = RunConfig(**sections)
    for section, values in (overrides or {}).items():
        setattr(cfg, section, replace(getattr(cfg, section), **values))
    return cfg


def load_splits(dc: DataConfig, seed: int) -> tuple[Examples, Optional[Examples], Optional[Examples]]:
    """A recipe's own splits, one file (or recipe) split by ``dc.split``, or separate
    train/validation/test files."""
    read = lambda p: read_examples(p, dc.text_column, dc.label_column, pair_column=dc.text_pair_column)  # noqa: E731
    recipe = get_recipe(dc.recipe) if dc.recipe else None
    if recipe is not None and recipe.load_splits is not None:
        train, val, test = recipe.load_splits(seed)
        if dc.balance == "undersample":
            train = undersample(train, seed)
        return train, val, test
    if recipe is not None:
        full = recipe.load()
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


def check_labels(cfg: RunConfig, train: Examples, others: dict[str, Optional[Examples]]) -> str:
    """Fit the task on the training labels and encode every other split's labels, so a
    label unseen in training or a non-numeric regression target fails in a second, not
    after the training it would otherwise end. Returns the task shape."""
    task = make_task(cfg.model.task, train.labels, separator=cfg.data.label_separator,
                     class_weights=cfg.train.class_weights, positive_label=cfg.data.positive_label)
    if cfg.data.balance and task.kind != "single":
        raise LmClassifyError(f"--balance {cfg.data.balance} balances classes; a {task.kind} task has none to "
                              f"balance (for multi-label data use --class-weights auto)")
    for name, ex in others.items():
        if ex is not None and len(ex):
            try:
                task.encode_labels(ex.labels)
            except LmClassifyError as e:
                raise LmClassifyError(f"{name} split ({ex.source or 'data'}): {e}") from None
    return task.kind


def run_training(cfg: RunConfig, output: Path, overwrite: bool = False, progress: bool = True) -> dict:
    """Train, evaluate on every split, and write the model directory. Returns the metrics."""
    with staged_output(Path(output), overwrite) as tmp:
        train, val, test = load_splits(cfg.data, cfg.train.seed)
        check_labels(cfg, train, {"validation": val, "test": test})
        if progress:
            sizes = ", ".join(f"{n} {len(s)}" for n, s in (("train", train), ("validation", val), ("test", test)) if s)
            print(f"data: {sizes}")
        log = MetricsLog(tmp / "metrics.jsonl")
        clf = TextClassifier(model_config=cfg.model, train_config=cfg.train, positive_label=cfg.data.positive_label,
                             label_separator=cfg.data.label_separator, progress=progress)
        clf.fit(train.inputs(), train.labels, validation=(val.inputs(), val.labels) if val else None, log=log.log)
        metrics = {}
        for name, ex in (("train", train), ("validation", val), ("test", test)):
            if ex is not None and len(ex):
                metrics[name] = clf.evaluate(ex.inputs(), ex.labels, split=name)
        fr = clf.fit_result_
        metrics.update(task=clf.task_.kind, train_seconds=round(clf.train_seconds_, 3),
                       parameters=clf.parameter_counts_, feature_cache=clf.feature_cache_, steps=fr.steps,
                       best_step=fr.best_step, stopped_early=fr.stopped_early, train_tokens=fr.train_tokens)
        if clf.calibration_:
            metrics["calibration"] = clf.calibration_
        clf.save(tmp, text_column=cfg.data.text_column, text_pair_column=cfg.data.text_pair_column)
        cfg.save(tmp / "training_config.json")
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        last = metrics.get("test") or metrics.get("validation") or metrics["train"]
        plots = plot_training_curves(read_metrics_log(tmp / "metrics.jsonl"), tmp,
                                     metrics=("loss", clf.task_.main_metric))
        if "confusion_matrix" in last:
            plots.append(plot_confusion_matrix(last["confusion_matrix"], last["labels"],
                                               tmp / "confusion_matrix.png"))
        notes = compatibility_notes(clf) or [
            "loads with plain transformers: pipeline('text-classification', model=DIR) gives the same labels"]
        if clf.calibration_:
            notes.append("decision thresholds were tuned on the validation split, so its numbers are "
                         "optimistic; the test split is the honest estimate")
        report = render_report(metrics, cfg.to_dict(), title=f"lmclassify: {cfg.model.name} on "
                               f"{cfg.data.recipe or cfg.data.data or cfg.data.train}",
                               notes=notes, plots=[p.name for p in plots])
        write_report(tmp / "report.md", report)
    return {"output": str(output), "metrics": metrics}
