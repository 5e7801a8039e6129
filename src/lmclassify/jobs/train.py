"""The `train` job as an importable function: config -> data -> fit -> evaluate every
split -> model directory with metrics, curves and a report. Returns data (the CLI prints it).

Everything is written into a staged directory that is renamed into place only when
complete, for every task shape alike.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Union

from ..config import DataConfig, RunConfig
from ..data.datasets import is_conll, read_dataset
from ..data.recipes import get_recipe
from ..data.splits import split, undersample
from ..errors import LmClassifyError
from ..estimators import ESTIMATORS
from ..evaluation.metrics import MetricsLog, read_metrics_log
from ..evaluation.plots import plot_confusion_matrix, plot_training_curves
from ..evaluation.report import render_report, write_report
from ..estimators.artifacts import staged_output
from ..tasks import TOKEN, Task, make_task
from .config import absolute_paths, apply_recipe, default_model

SPLITS = ("train", "validation", "test")


def wants_tokens(cfg: RunConfig) -> bool:
    """Token labelling: asked for, a token recipe, or CoNLL files."""
    dc = cfg.data
    if cfg.model.task == "token":
        return True
    if dc.recipe:
        return get_recipe(dc.recipe).task == "token"
    return any(p is not None and is_conll(p) for p in (dc.data, dc.train))


def load_splits(dc: DataConfig, seed: int, tokens: bool):
    """A recipe's own splits, one file (or recipe) split by ``dc.split`` (stratified for
    single-label data), or separate train/validation/test files."""
    read = lambda p: read_dataset(p, tokens, dc.text_column, dc.label_column, dc.text_pair_column)  # noqa: E731
    recipe = get_recipe(dc.recipe) if dc.recipe else None
    balance = (lambda ex: undersample(ex, seed)) if dc.balance == "undersample" else (lambda ex: ex)
    if recipe is not None and recipe.load_splits is not None:
        train, val, test = recipe.load_splits(seed)
        return balance(train), val, test
    if recipe is not None:
        full = recipe.load()
    elif dc.data:
        full = read(dc.data)
    elif dc.train:
        return balance(read(dc.train)), read(dc.validation) if dc.validation else None, \
            read(dc.test) if dc.test else None
    else:
        raise LmClassifyError("no data: pass --data FILE, --train FILE or --recipe NAME")
    train, val, test = split(balance(full), tuple(dc.split), seed, separator=dc.label_separator)
    return train, val or None, test or None


def fit_task(cfg: RunConfig, train, others: dict, tokens: bool) -> Task:
    """Fit the task on the training labels and encode every other split's labels, so a
    label unseen in training or a non-numeric regression target fails in a second, not
    after the training it would otherwise end."""
    if tokens and cfg.model.task not in ("auto", "token"):
        raise LmClassifyError(f"CoNLL data is token labelling; --task {cfg.model.task} does not apply to it")
    kind = "token" if tokens else cfg.model.task
    task = make_task(kind, train.labels, separator=cfg.data.label_separator, class_weights=cfg.train.class_weights,
                     positive_label=cfg.data.positive_label)
    if cfg.data.balance and task.kind != "single":
        raise LmClassifyError(f"--balance {cfg.data.balance} balances classes; a {task.kind} task has none to "
                              f"balance (use --class-weights auto)")
    for name, ex in others.items():
        if ex is not None and len(ex):
            try:
                task.encode_labels(ex.labels, where=ex.where)
            except LmClassifyError as e:
                raise LmClassifyError(f"{name} split {ex.source or ''}: {e}") from None
    return task


def resolve(cfg: RunConfig) -> RunConfig:
    """The config with its recipe applied, a model named and data paths absolute (see
    ``jobs/config.py``)."""
    cfg = absolute_paths(apply_recipe(cfg))
    return default_model(cfg, wants_tokens(cfg))


def train(config: RunConfig, output: Union[str, Path], overwrite: bool = False, progress: bool = True) -> dict:
    """Train, evaluate on every split, and write the model directory.

    Returns ``{"output", "metrics", "config"}``: the metrics of every split and run facts,
    and the resolved config (also saved as ``training_config.json``)."""
    cfg = resolve(config)
    tokens = wants_tokens(cfg)
    with staged_output(Path(output), overwrite) as tmp:
        train_set, val, test = load_splits(cfg.data, cfg.train.seed, tokens)
        task = fit_task(cfg, train_set, {"validation": val, "test": test}, tokens)
        if progress:
            sizes = ", ".join(f"{n} {len(s)}" for n, s in zip(SPLITS, (train_set, val, test)) if s)
            print(f"data: {sizes}")
        log = MetricsLog(tmp / "metrics.jsonl")
        est = ESTIMATORS[task.network].from_config(cfg.model, cfg.train, cfg.data, progress=progress)
        if task.network != TOKEN:
            est.set_params(task=task.kind)
        est.fit(train_set.inputs(), train_set.labels,
                validation=(val.inputs(), val.labels) if val else None, log=log.log)
        metrics: dict = {}
        for name, ex in zip(SPLITS, (train_set, val, test)):
            if ex is not None and len(ex):
                metrics[name] = est.evaluate(ex.inputs(), ex.labels, split=name)
        fr = est.fit_result_
        metrics.update(task=est.task_.kind, train_seconds=round(est.train_seconds_, 3),
                       parameters=est.parameter_counts_, feature_cache=est.feature_cache_, steps=fr.steps,
                       best_step=fr.best_step, stopped_early=fr.stopped_early, train_tokens=fr.train_tokens,
                       truncated={n: metrics[n]["truncated"] for n in SPLITS if n in metrics})
        if est.calibration_:
            metrics["calibration"] = est.calibration_
        resolved = RunConfig(model=est.model_config_, data=cfg.data, train=est.train_config_)
        est.save(tmp, config=resolved)
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        _report(tmp, metrics, resolved, est)
    return {"output": str(output), "metrics": metrics, "config": resolved.to_dict()}


def _report(tmp: Path, metrics: dict, cfg: RunConfig, est) -> None:
    last = next(metrics[s] for s in reversed(SPLITS) if s in metrics)
    plots = plot_training_curves(read_metrics_log(tmp / "metrics.jsonl"), tmp,
                                 metrics=("loss", est.task_.main_metric))
    if "confusion_matrix" in last:
        plots.append(plot_confusion_matrix(last["confusion_matrix"], last["labels"], tmp / "confusion_matrix.png"))
    meta = json.loads((tmp / "lmclassify.json").read_text())
    notes = list(meta["notes"]) or [
        "loads with plain transformers: pipeline('text-classification' or 'token-classification', model=DIR) "
        "gives the same labels"]
    if est.calibration_:
        notes.append("decision thresholds were tuned on the validation split, so its numbers are "
                     "optimistic; the test split is the honest estimate")
    cut = {k: v for k, v in metrics["truncated"].items() if v}
    if cut:
        notes.append(f"texts longer than max_length {cfg.model.max_length} were truncated: " +
                     ", ".join(f"{v} in {k}" for k, v in cut.items()))
    dc = cfg.data
    title = f"lmclassify: {cfg.model.name}{' + CRF' if cfg.model.crf else ''} on {dc.recipe or dc.data or dc.train}"
    write_report(tmp / "report.md", render_report(metrics, cfg.to_dict(), title=title, notes=notes,
                                                  plots=[p.name for p in plots], columns=est.task_.report_columns))
