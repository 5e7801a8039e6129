"""The `train` job as an importable function: config -> data -> fit -> evaluate every
split -> model directory with metrics, curves and a report. Returns data (the CLI prints it).

Everything is written into a staged directory that is renamed into place only when
complete, for every task shape alike.
"""
from __future__ import annotations

import json
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

from ..config import DataConfig, RunConfig, check_options
from ..data.datasets import is_conll, read_dataset
from ..data.recipes import get_recipe
from ..data.splits import split, undersample
from ..errors import Interrupted, LmClassifyError
from ..estimators import ESTIMATORS
from ..evaluation.metrics import MetricsLog, read_metrics_log
from ..evaluation.plots import plot_confusion_matrix, plot_training_curves
from ..evaluation.report import render_report, write_report
from ..training import distributed
from ..training.checkpoint import Checkpoints
from ..training.device import pick_device
from ..training.faults import maybe_die
from ..training.logistic_head import loop_examples
from ..training.loop import TrainingInterrupted, total_steps
from ..training.progress import ProgressLines, TensorBoardLog, fan_out, tensorboard_writer
from ..tasks import TOKEN, Task, make_task
from .config import absolute_paths, apply_recipe, default_model
from .rundir import FEATURES, RunDir, data_fingerprint, with_run_options

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


@distributed.failures_as_one_line
def train(config: Optional[RunConfig], output: Union[str, Path], overwrite: bool = False, progress: bool = True,
          resume: bool = False) -> dict:
    """Train, evaluate on every split, and write the model directory.

    The run lives in ``<output>.partial/`` until complete (``jobs/rundir.py``), with a
    checkpoint at every evaluation. ``resume`` continues an interrupted run exactly; its
    config is the saved one (``config`` None) or must equal it. Ctrl-C stops at the next
    step, keeps a checkpoint and raises ``Interrupted`` naming the resume command.

    Returns ``{"output", "metrics", "config"}``: the metrics of every split and run facts,
    and the resolved config (also saved as ``training_config.json``).

    Under ``torchrun`` every process runs this job on the same data; only rank 0 prints
    and writes (run folder, logs, checkpoints, model directory; ``training/distributed.py``)."""
    main = distributed.is_main()
    progress = progress and main
    run = RunDir(Path(output))
    if main:
        run.check_writable(overwrite, resume)
    cfg = resolve(config) if config is not None else run.saved_config()
    check_options(cfg.model, cfg.train)
    if cfg.train.report_to == "tensorboard":
        tensorboard_writer()  # installed? say so before any model is loaded
    tokens = wants_tokens(cfg)
    train_set, val, test = load_splits(cfg.data, cfg.train.seed, tokens)
    task = fit_task(cfg, train_set, {"validation": val, "test": test}, tokens)
    fingerprint = data_fingerprint({"train": train_set, "validation": val, "test": test})
    if resume:
        run.check_resume(cfg, fingerprint)
    elif main:
        run.start(cfg, fingerprint)
    distributed.init(distributed.device_for_rank(pick_device(cfg.train.device)))
    distributed.barrier()  # the run folder is ready before any rank puts its feature cache there
    checkpoints = Checkpoints(run.path, cfg.train.save_every)
    state = checkpoints.load() if resume else None
    if progress:
        sizes = ", ".join(f"{n} {len(s)}" for n, s in zip(SPLITS, (train_set, val, test)) if s)
        print(f"data: {sizes}")
        print(f"{'resuming from step ' + str(state.state.steps) if state else 'run'}: metrics log "
              f"{run.path / 'metrics.jsonl'}")
    est = ESTIMATORS[task.network].from_config(cfg.model, cfg.train, cfg.data, progress=progress)
    if task.network != TOKEN:
        est.set_params(task=task.kind)
    metrics_log = MetricsLog(run.path / "metrics.jsonl") if main else None
    for rec in state.state.history if state and main else ():
        metrics_log.log(rec)  # the log as of the checkpoint: what came after it is redone
    try:
        with stop_on_ctrl_c() as stop:
            est.fit(train_set.inputs(), train_set.labels, validation=(val.inputs(), val.labels) if val else None,
                    log=_loggers(metrics_log, est, cfg, run, state, progress, len(train_set)) if main else None,
                    feature_dir=run.path / FEATURES, checkpoints=checkpoints, resume=state, stop=stop)
    except TrainingInterrupted:
        raise Interrupted(f"interrupted; a checkpoint is in {run.path}. Resume with: "
                          f"lmclassify train --resume {run.output}") from None
    except BaseException:
        if main:
            run.abandon(checkpoints.exists())
        raise
    metrics: dict = {}
    for name, ex in zip(SPLITS, (train_set, val, test)):
        if ex is not None and len(ex):
            metrics[name] = est.evaluate(ex.inputs(), ex.labels, split=name)
    fr = est.fit_result_
    metrics.update(task=est.task_.kind, train_seconds=round(est.train_seconds_, 3),
                   parameters=est.parameter_counts_, feature_cache=est.feature_cache_, steps=fr.steps,
                   best_step=fr.best_step, stopped_early=fr.stopped_early, train_tokens=fr.train_tokens,
                   truncated={n: metrics[n]["truncated"] for n in SPLITS if n in metrics},
                   over_max_length={n: metrics[n]["over_max_length"] for n in SPLITS if n in metrics})
    if est.calibration_:
        metrics["calibration"] = est.calibration_
    resolved = RunConfig(model=est.model_config_, data=cfg.data, train=with_run_options(est.train_config_, cfg.train))
    if not main:  # the other ranks computed the same; rank 0 writes it
        return {"output": str(output), "metrics": metrics, "config": resolved.to_dict()}
    est.save(run.path, config=resolved)
    maybe_die("final-save")
    (run.path / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    _report(run.path, metrics, resolved, est)
    run.finish()
    return {"output": str(output), "metrics": metrics, "config": resolved.to_dict()}


def _loggers(metrics_log: MetricsLog, est, cfg: RunConfig, run: RunDir, state, progress: bool, n_train: int):
    """Every evaluation record goes to metrics.jsonl, a line on stderr, and TensorBoard."""
    out = [metrics_log.log]
    if progress:
        out.append(_LazyProgress(est, n_train, state.state.steps if state else 0))
    if cfg.train.report_to == "tensorboard":
        out.append(TensorBoardLog(run.path / "tensorboard"))
    return fan_out(out)


class _LazyProgress:
    """Progress lines need the resolved options (epochs, batch size), known once fit has begun."""

    def __init__(self, est, n_train: int, start_step: int):
        self.est, self.n_train, self.start_step, self.lines = est, n_train, start_step, None

    def __call__(self, rec: dict) -> None:
        if self.lines is None:
            tc, task = self.est.train_config_, self.est.task_
            self.lines = ProgressLines(total_steps(loop_examples(self.n_train, tc), tc), tc.epochs, tc.monitor,
                                       task.higher_is_better(tc.monitor), self.start_step)
        self.lines(rec)


@contextmanager
def stop_on_ctrl_c() -> Iterator[Callable[[], bool]]:
    """The first Ctrl-C asks the loop to stop at the next step (with a checkpoint); a second
    one interrupts at once. Only the main thread can own the handler."""
    asked = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield asked.is_set
        return

    def handler(signum, frame):
        if asked.is_set():
            raise KeyboardInterrupt
        asked.set()
        print("\nlmclassify: stopping after this step (Ctrl-C again to stop at once)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield asked.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


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
    windowed = {k: v for k, v in metrics["over_max_length"].items() if v and not cut.get(k)}
    if windowed:  # read whole, in overlapping windows (--long-text chunk; token tasks always)
        notes.append(f"texts longer than max_length {cfg.model.max_length} were read whole in overlapping windows: "
                     + ", ".join(f"{v} in {k}" for k, v in windowed.items()))
    dc = cfg.data
    title = f"lmclassify: {cfg.model.name}{' + CRF' if cfg.model.crf else ''} on {dc.recipe or dc.data or dc.train}"
    write_report(tmp / "report.md", render_report(metrics, cfg.to_dict(), title=title, notes=notes,
                                                  plots=[p.name for p in plots], columns=est.task_.report_columns))
