"""The `pretrain` job: continue a model's own pretraining on unlabelled text (masked LM for
encoders, causal LM for decoders) through the one loop, and write a transformers model
directory that ``lmclassify train --model DIR`` fine-tunes.

Domain-adaptive pretraining: a few epochs of the pretraining objective on the domain's
texts (the ``text`` column of a labelled file, labels ignored, is the main use) before
fine-tuning, which helps most when labels are few or the domain is unusual.

The run lives in ``<output>.partial/`` until complete (``jobs/rundir.py``): a checkpoint
at every evaluation, ``metrics.jsonl``, progress lines, ``--resume``, Ctrl-C, as in
``train``. The output: ``save_pretrained`` of the LM and its tokenizer,
``pretrain_config.json`` (the resolved options) and ``metrics.json`` (validation loss and
perplexity before and after).
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Optional, Union

from ..config import PretrainRunConfig, RunConfig, TrainConfig, check_options, fill_defaults
from ..data.examples import Examples
from ..data.readers import read_examples
from ..data.splits import split
from ..errors import Interrupted, LmClassifyError
from ..evaluation.metrics import MetricsLog, read_metrics_log
from ..evaluation.plots import plot_training_curves
from ..models.checkpointing import checkpoint_activations
from ..models.language_model import load_language_model
from ..models.load import family, load_config, load_tokenizer, position_limit
from ..models.resolve import DEFAULT_ENCODER, resolve_model
from ..tasks.language_modeling import LM, LanguageModeling
from ..training.checkpoint import Checkpoints
from ..training.device import pick_device
from ..training.faults import maybe_die
from ..training.loop import TrainingInterrupted, fit, predict_logits, total_steps
from ..training.progress import ProgressLines, TensorBoardLog, fan_out, tensorboard_writer
from .config import absolute_paths, apply_recipe
from .rundir import RunDir, data_fingerprint, with_run_options
from .train import load_splits, stop_on_ctrl_c

DEFAULT_SPLIT = (0.9, 0.1, 0.0)  # one file: 10 % held out for the validation loss, no test split
BEFORE = "before.json"  # the validation metrics of the untouched model, kept across a resume


def resolve(cfg: PretrainRunConfig) -> PretrainRunConfig:
    """Data paths absolute; a recipe's data (and model, if none is named) applied; the
    model defaults to the default encoder. A recipe's training options are a classifier's,
    so they are not taken."""
    base = absolute_paths(RunConfig(model=cfg.model, data=cfg.data, train=cfg.train))
    if base.data.recipe:
        with_recipe = apply_recipe(base)
        base = dataclasses.replace(base, data=with_recipe.data,
                                   model=dataclasses.replace(base.model, name=with_recipe.model.name))
    model = dataclasses.replace(base.model, name=base.model.name or DEFAULT_ENCODER)
    return PretrainRunConfig(model=model, data=base.data, train=base.train, pretrain=cfg.pretrain)


def load_texts(cfg: PretrainRunConfig) -> tuple[Examples, Optional[Examples]]:
    """Training and validation texts (labels, if any, dropped): a recipe's train and
    validation splits (never its test split), a train (+ validation) file, or one file
    split by ``--split`` (default 90/10)."""
    dc, seed = cfg.data, cfg.train.seed
    read = lambda p: Examples(read_examples(p, dc.text_column, require_labels=False).texts, None, str(p))  # noqa: E731
    if dc.recipe:
        train, val, _ = load_splits(dc, seed, tokens=False)
        return Examples(train.texts, None, train.source), (Examples(val.texts, None, val.source) if val else None)
    if dc.train:
        return read(dc.train), read(dc.validation) if dc.validation else None
    if not dc.data:
        raise LmClassifyError("no text to pretrain on: pass --data FILE, --train FILE or --recipe NAME")
    train, val, _ = split(read(dc.data), dc.split or DEFAULT_SPLIT, seed, stratify=False)
    return train, val if len(val) else None


def pretrain(config: Optional[PretrainRunConfig], output: Union[str, Path], overwrite: bool = False,
             progress: bool = True, resume: bool = False) -> dict:
    """Continue pretraining ``config.model.name`` on the texts; returns ``{"output",
    "metrics", "config"}`` (metrics: ``validation_before``/``validation`` loss and
    perplexity, steps, tokens, seconds).

    >>> pretrain(PretrainRunConfig(data=DataConfig(recipe="trec")), "runs/trec-mlm")  # doctest: +SKIP
    """
    run = RunDir(Path(output), PretrainRunConfig)
    run.check_writable(overwrite, resume)
    cfg = resolve(config) if config is not None else run.saved_config()
    mc, tc, pc = cfg.model, cfg.train, cfg.pretrain
    check_options(mc, dataclasses.replace(tc, monitor=None))  # the monitor is checked against the task below
    pc.check()
    if tc.report_to == "tensorboard":
        tensorboard_writer()
    train_ex, val_ex = load_texts(cfg)
    fingerprint = data_fingerprint({"train": train_ex, "validation": val_ex})
    if resume:
        run.check_resume(cfg, fingerprint)
    else:
        run.start(cfg, fingerprint)
    try:
        return _run(run, cfg, train_ex, val_ex, progress, resume)
    except TrainingInterrupted:
        raise Interrupted(f"interrupted; a checkpoint is in {run.path}. Resume with: "
                          f"lmclassify pretrain --resume {run.output}") from None


def _run(run: RunDir, cfg: PretrainRunConfig, train_ex: Examples, val_ex: Optional[Examples], progress: bool,
         resume: bool) -> dict:
    mc, tc, pc = (dataclasses.replace(cfg.model), dataclasses.replace(cfg.train), cfg.pretrain)
    checkpoints = Checkpoints(run.path, tc.save_every)
    try:
        path = resolve_model(mc.name)
        tok = load_tokenizer(path)
        hf_config = load_config(path)
        fam = family(hf_config)
        causal = pc.objective == "causal" or (pc.objective == "auto" and fam == "decoder")
        defaulted = fill_defaults(mc, tc, LM, fam)
        limit = position_limit(hf_config, tok)
        if limit and mc.max_length > limit:
            if "max_length" not in defaulted:
                print(f"lmclassify: note: --max-length {mc.max_length} is past {mc.name}'s limit; using {limit}")
            mc.max_length = limit
        task = LanguageModeling(tok, causal, pc.mlm_probability, pc.whole_word_mask, seed=tc.seed)
        tc.monitor = tc.monitor or task.default_monitor()
        task.check_monitor(tc.monitor)
        train_enc = task.encode(train_ex.texts, mc.max_length)
        val_enc = task.encode(val_ex.texts, mc.max_length) if val_ex is not None and len(val_ex) else None
        device = pick_device(tc.device)
        net = load_language_model(path, causal, tc.seed).to(device)
        if tc.gradient_checkpointing:
            checkpoint_activations(net.hf)
        state = checkpoints.load() if resume else None
        if progress:
            sizes = f"train {len(train_enc)}" + (f", validation {len(val_enc)}" if val_enc else "")
            print(f"pretraining {mc.name}: {task.describe()}; texts: {sizes}")
            print(f"{'resuming from step ' + str(state.state.steps) if state else 'run'}: metrics log "
                  f"{run.path / 'metrics.jsonl'}")
        before = _before(run, net, task, val_enc, tok.pad_token_id, device, tc, state is not None)
        metrics_log = MetricsLog(run.path / "metrics.jsonl")
        for rec in state.state.history if state else ():
            metrics_log.log(rec)
        logs = [metrics_log.log]
        if progress:
            logs.append(ProgressLines(total_steps(len(train_enc), tc), tc.epochs, tc.monitor,
                                      task.higher_is_better(tc.monitor), state.state.steps if state else 0))
        if tc.report_to == "tensorboard":
            logs.append(TensorBoardLog(run.path / "tensorboard"))
        t_fit = time.perf_counter()
        with stop_on_ctrl_c() as stop:
            fr = fit(net, task, train_enc, val_enc, tc, tok.pad_token_id, device, log=fan_out(logs),
                     checkpoints=checkpoints, resume=state, stop=stop)
        fit_seconds = time.perf_counter() - t_fit
    except TrainingInterrupted:
        raise
    except BaseException:
        run.abandon(checkpoints.exists())
        raise
    metrics: dict = {"objective": "causal" if causal else "mlm", "validation_before": before}
    if val_enc is not None:
        metrics["validation"] = task.metrics(predict_logits(net, task, val_enc, tok.pad_token_id, device,
                                                            tc.eval_batch_size))
    metrics.update(train_texts=len(train_enc), validation_texts=len(val_enc) if val_enc else 0,
                   truncated={"train": train_enc.truncated, "validation": val_enc.truncated if val_enc else 0},
                   steps=fr.steps, best_step=fr.best_step, stopped_early=fr.stopped_early,
                   train_tokens=fr.train_tokens, train_seconds=round(fit_seconds, 3),
                   parameters=sum(p.numel() for p in net.parameters()))
    resolved = PretrainRunConfig(model=mc, data=cfg.data, train=with_run_options(tc, cfg.train), pretrain=pc)
    net.save_pretrained(run.path)
    tok.save_pretrained(run.path)
    maybe_die("final-save")
    resolved.save(run.path / "pretrain_config.json")
    (run.path / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plot_training_curves(read_metrics_log(run.path / "metrics.jsonl"), run.path, metrics=("loss", "perplexity"))
    (run.path / BEFORE).unlink(missing_ok=True)
    run.finish()
    return {"output": str(run.output), "metrics": metrics, "config": resolved.to_dict()}


def _before(run: RunDir, net, task: LanguageModeling, val_enc, pad_id: int, device, tc: TrainConfig,
            resuming: bool) -> Optional[dict]:
    """The validation metrics of the model as loaded (same masks as every later evaluation):
    what pretraining is measured against. Computed once; a resumed run reads them back."""
    if val_enc is None:
        return None
    saved = run.path / BEFORE
    if resuming and saved.is_file():
        return json.loads(saved.read_text())
    m = task.metrics(predict_logits(net, task, val_enc, pad_id, device, tc.eval_batch_size))
    saved.write_text(json.dumps(m) + "\n")
    return m


__all__ = ["pretrain", "resolve", "load_texts"]
