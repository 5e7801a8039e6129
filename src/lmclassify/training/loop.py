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
from ..data.windows import merge
from .checkpoint import Checkpoints, LoopState, Resume, set_rng_states
from . import distributed as dist
from .device import autocast
from .faults import maybe_die

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
def predict_logits(model, task, enc: Encoded, pad_id: int, device: torch.device, batch_size: int = 64,
                   across_ranks: bool = False, bf16: bool = False) -> torch.Tensor:
    """The network's outputs for every example, in input order, gathered by the task
    ((N, C) per text; (N, T, C) per token). Longest-first batches waste no padding.
    ``across_ranks``: under torchrun each rank computes a share, and every rank gets all outputs.
    A long text read in windows gets one output, merged from its windows' (``data/windows.py``).
    ``bf16``: a CPU model quantized to bf16 (``models/bf16.py``) runs under CPU autocast."""
    model.eval()
    use_features = enc.features is not None
    lengths = enc.lengths
    out: list = [None] * len(enc)
    batches = sorted_batches(lengths, batch_size)
    for idx, batch in iterate(enc, dist.my_batches(batches) if across_ranks else batches, pad_id, use_features):
        batch = task.prepare_batch(batch, enc, idx, None)
        with autocast(device, cpu_bf16=bf16):
            logits = model(**_model_inputs(_to(batch, device))).float().cpu()
        for r, i in enumerate(idx):
            # a per-token output keeps only its own positions, not the batch's padding
            out[i] = logits[r, :lengths[i]] if logits.ndim == 3 else logits[r]
    out = dist.gather_rows(out) if across_ranks else out
    return task.gather(out if enc.windows is None else merge(out, enc.windows))


def _optimizer(model, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 else decay).append(p)  # no decay on biases and norms
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    # fused: one kernel per step instead of ~11 passes over every tensor (4.6x faster on a
    # CPU for the last block's 3.5M parameters, where the optimizer was a third of a step)
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, fused=device.type in ("cuda", "cpu"))


def _clip(params: list, max_norm: float) -> None:
    """``clip_grad_norm_`` without its multiply by 1.0 when the norm is within ``max_norm``
    (it multiplies unconditionally so a GPU never waits for the norm; the loop reads the
    loss every step anyway). The multiply was ~4 % of a step on the last block's 3.5M
    parameters on a CPU."""
    norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    if norm > max_norm:
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)


def total_steps(n_examples: int, cfg: TrainConfig) -> int:
    """Optimizer steps in a full run (the schedule's length, the progress lines' ETA)."""
    return math.ceil(math.ceil(n_examples / cfg.batch_size) / cfg.grad_accum) * cfg.epochs


class TrainingInterrupted(Exception):
    """Raised at a step boundary after ``stop()`` said so; a checkpoint has been written."""


def fit(model, task, train: Encoded, val: Optional[Encoded], cfg: TrainConfig, pad_id: int,
        device: torch.device, log: Optional[Callable[[dict], None]] = None,
        checkpoints: Optional[Checkpoints] = None, resume: Optional[Resume] = None,
        stop: Optional[Callable[[], bool]] = None) -> FitResult:
    """Train ``model`` in place; returns the history. Restores the best weights on the
    monitored validation metric when ``cfg.keep_best`` and a validation split exist.

    ``checkpoints`` are written after every evaluation and every ``save_every`` steps;
    ``resume`` continues from one exactly (weights, optimizer, schedule, every random
    generator, the position in the epoch's batch order). ``stop()`` is asked at every
    step boundary; when it says so, a checkpoint is written and ``TrainingInterrupted``
    raised."""
    rng = np.random.default_rng(cfg.seed)
    use_features = train.features is not None
    total = total_steps(len(train), cfg)
    opt = _optimizer(model, cfg, device)
    sched = get_scheduler(SCHEDULES[cfg.schedule], opt, num_warmup_steps=int(cfg.warmup_ratio * total),
                          num_training_steps=total)
    params = [p for p in model.parameters() if p.requires_grad]
    forward = dist.wrap(model, device)  # under torchrun: DDP, gradients averaged over ranks in backward
    # Batches vary in length: dynamic shapes compile once instead of once per length.
    forward = torch.compile(forward, dynamic=True) if cfg.compile else forward
    higher = task.higher_is_better(cfg.monitor)
    running = task.running_metric  # None: no per-batch statistic (regression)
    st, best_state = LoopState(), None
    if resume is not None:
        st, best_state = resume.state, resume.best
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in resume.weights:
                    p.copy_(resume.weights[name])
        opt.load_state_dict(resume.optimizer)
        sched.load_state_dict(resume.scheduler)
        set_rng_states(resume.rng)

    def save() -> None:
        if checkpoints is not None and dist.is_main():
            checkpoints.save(st, model, opt, sched, best_state)

    def evaluate_now(epoch: float) -> bool:
        """Log one eval record; returns True when early stopping says stop."""
        nonlocal best_state
        rec = {"step": st.steps, "epoch": round(epoch, 4), "examples_seen": st.seen,
               "train_loss": st.run_loss / max(st.run_n, 1), "learning_rate": sched.get_last_lr()[0]}
        if running:
            rec[f"train_{running}"] = st.run_correct / max(st.run_n, 1)
        st.run_loss, st.run_correct, st.run_n = 0.0, 0, 0
        if val is not None and len(val):
            m = task.metrics(predict_logits(model, task, val, pad_id, device, cfg.eval_batch_size, across_ranks=True),
                             val.labels)  # every rank gets the same outputs: early stopping agrees
            rec.update({f"val_{k}": m[k] for k in task.record_keys if k in m})
            score = rec.get(cfg.monitor)
            if score is None:
                raise ValueError(f"monitor {cfg.monitor!r} not among {sorted(rec)}")
            if st.best_score is None or (score > st.best_score if higher else score < st.best_score):
                st.best_score, st.best_step, st.bad_evals = score, st.steps, 0
                best_state = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
            else:
                st.bad_evals += 1
        st.history.append(rec)
        if log and dist.is_main():
            log(rec)
        model.train()
        return cfg.patience is not None and st.bad_evals >= cfg.patience

    model.train()
    while not st.finished and st.epoch < cfg.epochs:
        if st.epoch_rng is None:
            st.epoch_rng = rng.bit_generator.state
        rng.bit_generator.state = st.epoch_rng  # a resumed epoch draws the same order again
        batches = length_grouped_batches(train.lengths, cfg.batch_size, rng)
        shards = [dist.shard(b) for b in batches]  # (this rank's slice, its loss share); the whole batch in 1 process
        bar = tqdm(iterate(train, [s for s, _ in shards[st.batch:]], pad_id, use_features), total=len(batches),
                   initial=st.batch, desc=f"epoch {st.epoch + 1}/{cfg.epochs}", unit="batch", leave=False,
                   disable=None if dist.is_main() else True)
        early = False
        for i, (idx, batch) in enumerate(bar, start=st.batch):
            ends_step = not ((i + 1) % cfg.grad_accum and i + 1 != len(batches))
            share = shards[i][1]
            batch = _to(task.prepare_batch(batch, train, idx, st.epoch), device)
            with dist.no_sync(forward, ends_step):  # accumulating: all-reduce only on a step's last batch
                with autocast(device):
                    logits = forward(**_model_inputs(batch))
                loss = task.loss(logits, batch["labels"])
                ((loss * share if share != 1.0 else loss) / cfg.grad_accum).backward()
            n_mine = len(idx) if share else 0  # a stand-in example (share 0) counts for nothing
            loss_sum, correct, tokens = dist.sum_over_ranks(
                loss.item() * n_mine, task.correct(logits.detach(), batch["labels"]) if running and n_mine else 0,
                int(batch["attention_mask"].sum()) if n_mine else 0)  # the global batch's, on every rank
            n = len(batches[i])
            st.seen += n
            st.train_tokens += int(tokens)
            st.run_loss += loss_sum
            st.run_n += n
            if running:
                st.run_correct += correct
                bar.set_postfix(loss=f"{st.run_loss / st.run_n:.3f}",
                                **{running[:3]: f"{st.run_correct / st.run_n:.3f}"})
            else:
                bar.set_postfix(loss=f"{st.run_loss / st.run_n:.3f}")
            if not ends_step:
                continue
            if cfg.max_grad_norm:
                _clip(params, cfg.max_grad_norm)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            st.steps += 1
            st.batch = i + 1
            maybe_die("step")
            if cfg.eval_every and st.steps % cfg.eval_every == 0:
                early = evaluate_now(st.epoch + (i + 1) / len(batches))
                if early:
                    break
                save()
            elif checkpoints is not None and checkpoints.save_every and st.steps % checkpoints.save_every == 0:
                save()
            if stop is not None and dist.any_rank(stop()):
                save()
                raise TrainingInterrupted(f"stopped at step {st.steps}")
        bar.close()
        st.epoch_rng = rng.bit_generator.state  # where the next epoch's order will be drawn from
        epoch_done = st.epoch + 1
        st.epoch, st.batch = (cfg.epochs, 0) if early else (epoch_done, 0)
        if early:
            st.stopped_early = True
        elif not cfg.eval_every and evaluate_now(float(epoch_done)):
            st.stopped_early = epoch_done < cfg.epochs
            st.epoch = cfg.epochs
        elif cfg.eval_every and epoch_done == cfg.epochs and st.steps % cfg.eval_every:
            evaluate_now(float(cfg.epochs))  # the steps after the last evaluation count too
        if st.epoch < cfg.epochs:
            save()
    if not st.finished:
        if best_state is not None and cfg.keep_best:
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if name in best_state:
                        p.copy_(best_state[name])
        st.finished = True
        save()
    model.eval()
    return FitResult(history=st.history, best_step=st.best_step, best_score=st.best_score,
                     stopped_early=st.stopped_early, steps=st.steps, train_tokens=st.train_tokens)
