"""The one training loop: a plain function, top to bottom.

AdamW, warmup + decay schedule, gradient accumulation and clipping, periodic evaluation,
early stopping with the best weights kept, a JSONL metrics log and tqdm progress. It
trains from cached boundary states when the encoded splits carry them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import get_scheduler

from ..config import TrainConfig
from ..data.batching import Encoded, iterate, length_grouped_batches, sorted_batches
from .device import autocast

SCHEDULES = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}


@dataclass
class FitResult:
    history: list = field(default_factory=list)
    best_step: Optional[int] = None
    best_score: Optional[float] = None
    stopped_early: bool = False
    steps: int = 0
    train_tokens: int = 0


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _model_inputs(batch: dict) -> dict:
    return {k: v for k, v in batch.items() if k != "labels"}


@torch.inference_mode()
def predict_logits(model, task, enc: Encoded, pad_id: int, device: torch.device, batch_size: int = 64) -> torch.Tensor:
    """The network's outputs for every example, in input order, gathered by the task
    ((N, C) per text; (N, T, C) per token). Longest-first batches waste no padding."""
    model.eval()
    use_features = enc.features is not None
    lengths = enc.lengths
    out: list = [None] * len(enc)
    for idx, batch in iterate(enc, sorted_batches(lengths, batch_size), pad_id, use_features):
        with autocast(device):
            logits = model(**_model_inputs(_to(batch, device))).float().cpu()
        for r, i in enumerate(idx):
            # a per-token output keeps only its own positions, not the batch's padding
            out[i] = logits[r, :lengths[i]] if logits.ndim == 3 else logits[r]
    return task.gather(out)


def _optimizer(model, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 else decay).append(p)  # no decay on biases and norms
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, fused=device.type == "cuda")


def fit(model, task, train: Encoded, val: Optional[Encoded], cfg: TrainConfig, pad_id: int,
        device: torch.device, log: Optional[Callable[[dict], None]] = None) -> FitResult:
    """Train ``model`` in place; returns the history. Restores the best weights on the
    monitored validation metric when ``cfg.keep_best`` and a validation split exist."""
    rng = np.random.default_rng(cfg.seed)
    use_features = train.features is not None
    n_batches = math.ceil(len(train) / cfg.batch_size)
    steps_per_epoch = math.ceil(n_batches / cfg.grad_accum)
    total_steps = steps_per_epoch * cfg.epochs
    opt = _optimizer(model, cfg, device)
    sched = get_scheduler(SCHEDULES[cfg.schedule], opt, num_warmup_steps=int(cfg.warmup_ratio * total_steps),
                          num_training_steps=total_steps)
    params = [p for p in model.parameters() if p.requires_grad]
    # Batches vary in length: dynamic shapes compile once instead of once per length.
    forward = torch.compile(model, dynamic=True) if cfg.compile else model
    higher = task.higher_is_better(cfg.monitor)
    running = task.running_metric  # None: no per-batch statistic (regression)
    res = FitResult()
    best_state, bad_evals = None, 0
    seen, run_loss, run_correct, run_n = 0, 0.0, 0, 0

    def evaluate_now(epoch: float) -> bool:
        """Log one eval record; returns True when early stopping says stop."""
        nonlocal best_state, bad_evals, run_loss, run_correct, run_n
        rec = {"step": res.steps, "epoch": round(epoch, 4), "examples_seen": seen,
               "train_loss": run_loss / max(run_n, 1)}
        if running:
            rec[f"train_{running}"] = run_correct / max(run_n, 1)
        run_loss, run_correct, run_n = 0.0, 0, 0
        if val is not None and len(val):
            m = task.metrics(predict_logits(model, task, val, pad_id, device, cfg.eval_batch_size), val.labels)
            rec.update({f"val_{k}": m[k] for k in task.record_keys if k in m})
            score = rec.get(cfg.monitor)
            if score is None:
                raise ValueError(f"monitor {cfg.monitor!r} not among {sorted(rec)}")
            improved = res.best_score is None or (score > res.best_score if higher else score < res.best_score)
            if improved:
                res.best_score, res.best_step, bad_evals = score, res.steps, 0
                best_state = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
            else:
                bad_evals += 1
        res.history.append(rec)
        if log:
            log(rec)
        model.train()
        return cfg.patience is not None and bad_evals >= cfg.patience

    model.train()
    stop = False
    for epoch in range(cfg.epochs):
        batches = length_grouped_batches(train.lengths, cfg.batch_size, rng)
        bar = tqdm(iterate(train, batches, pad_id, use_features), total=len(batches),
                   desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", leave=False, disable=None)
        for i, (idx, batch) in enumerate(bar):
            batch = _to(batch, device)
            with autocast(device):
                logits = forward(**_model_inputs(batch))
            loss = task.loss(logits, batch["labels"])
            (loss / cfg.grad_accum).backward()
            n = len(idx)
            seen += n
            res.train_tokens += int(batch["attention_mask"].sum())
            run_loss += loss.item() * n
            run_n += n
            if running:
                run_correct += task.correct(logits.detach(), batch["labels"])
                bar.set_postfix(loss=f"{run_loss / run_n:.3f}", **{running[:3]: f"{run_correct / run_n:.3f}"})
            else:
                bar.set_postfix(loss=f"{run_loss / run_n:.3f}")
            if (i + 1) % cfg.grad_accum and i + 1 != len(batches):
                continue
            if cfg.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            res.steps += 1
            if cfg.eval_every and res.steps % cfg.eval_every == 0:
                if stop := evaluate_now(epoch + (i + 1) / len(batches)):
                    break
        bar.close()
        if stop:
            res.stopped_early = True
            break
        if not cfg.eval_every and evaluate_now(epoch + 1.0):
            res.stopped_early = epoch + 1 < cfg.epochs
            break
    else:
        if cfg.eval_every and res.steps % cfg.eval_every:  # the steps after the last evaluation count too
            evaluate_now(float(cfg.epochs))
    if best_state is not None and cfg.keep_best:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in best_state:
                    p.copy_(best_state[name])
    model.eval()
    return res
