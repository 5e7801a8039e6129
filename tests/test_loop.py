"""The training loop, ``fit``: accumulation, evaluation cadence, early stopping, best
weights, schedules, clipping and the monitor direction, on a tiny model and synthetic data."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from lmclassify.config import TrainConfig
from lmclassify.data.batching import Encoded
from lmclassify.training.loop import fit

try:
    from lmclassify.tasks import SingleLabel
except ImportError:
    from lmclassify.training.tasks import SingleLabel

CPU = torch.device("cpu")
PAD = 0


class Tiny(nn.Module):
    """Embedding, mean over the real tokens, linear: (B, T) ids -> (B, 2) logits."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.emb = nn.Embedding(8, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, input_ids=None, attention_mask=None, hidden=None):
        x = self.emb(input_ids) if hidden is None else hidden
        m = attention_mask.unsqueeze(-1).float()
        return self.head((x * m).sum(1) / m.sum(1))


def data(n: int, flip: bool = False, seed: int = 0, length: int = 5) -> Encoded:
    """Class 0 texts use tokens 1-3, class 1 texts tokens 4-6 (``flip``: labels swapped)."""
    rng = np.random.default_rng(seed)
    y = [i % 2 for i in range(n)]
    ids = [rng.integers(1, 4, length).tolist() if c == 0 else rng.integers(4, 7, length).tolist() for c in y]
    return Encoded(ids, [1 - c for c in y] if flip else y)


TASK = SingleLabel.fit(["a", "b"])


def cfg(**kw) -> TrainConfig:
    base = dict(epochs=2, batch_size=4, learning_rate=0.05, weight_decay=0.0, schedule="constant", warmup_ratio=0.0,
                max_grad_norm=None, monitor="val_loss", seed=7)
    return TrainConfig(**{**base, **kw})


def run(train: Encoded, val, log=None, model=None, **kw):
    model = model or Tiny()
    return model, fit(model, TASK, train, val, cfg(**kw), PAD, CPU, log=log)


def weights(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def same(a: dict, b: dict) -> bool:
    return all(torch.allclose(a[k], b[k], rtol=1e-6, atol=1e-7) for k in a)


@pytest.fixture
def optimizer_steps():
    """Every optimizer step as it happens: the lr it uses, the gradients and their total norm."""
    seen = []

    def hook(opt, args, kwargs):
        grads = [p.grad.detach().clone() for g in opt.param_groups for p in g["params"]]
        seen.append({"lr": opt.param_groups[0]["lr"], "grads": grads,
                     "norm": torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item()})

    handle = register_optimizer_step_pre_hook(hook)
    yield seen
    handle.remove()


# ---- gradient accumulation --------------------------------------------------------------

@pytest.mark.parametrize("n,accum,steps_per_epoch", [(16, 1, 4), (16, 2, 2), (20, 2, 3), (16, 4, 1)])
def test_grad_accum_steps_once_per_window(n, accum, steps_per_epoch):
    _, res = run(data(n), None, epochs=3, batch_size=4, grad_accum=accum)
    assert res.steps == 3 * steps_per_epoch  # a trailing partial window still steps (20 = 5 batches)


def test_accumulated_half_batches_equal_one_full_batch(optimizer_steps):
    # 8 examples: batch 8 is one batch per epoch, batch 4 x accum 2 is two batches that
    # together hold the same 8 examples in one window, whatever order the seed shuffles
    # them in. Each half's mean loss is divided by 2, so the summed gradient is the
    # full-batch mean gradient: same gradients at every step, hence the same weights.
    # (With more than one window per epoch the two runs would group different examples
    # into a step, so only the whole-epoch window can be compared exactly.)
    train = data(8)
    full, r_full = run(train, None, epochs=3, batch_size=8, grad_accum=1)
    g_full = [s["grads"] for s in optimizer_steps]
    optimizer_steps.clear()
    half, r_half = run(train, None, epochs=3, batch_size=4, grad_accum=2)
    g_half = [s["grads"] for s in optimizer_steps]
    assert r_full.steps == r_half.steps == 3 == len(g_full) == len(g_half)
    for a, b in zip(g_full, g_half):  # catches a missing (or doubled) / grad_accum
        assert all(torch.allclose(x, y, rtol=1e-5, atol=1e-7) for x, y in zip(a, b))
    assert same(weights(full), weights(half))
    assert not same(weights(full), weights(Tiny()))  # it did train


# ---- evaluation cadence -------------------------------------------------------------------

def test_eval_every_logs_every_n_steps_and_the_callback_sees_the_history():
    logged = []
    _, res = run(data(16), data(8, seed=1), log=logged.append, epochs=2, batch_size=4, eval_every=3)
    assert res.steps == 8
    assert logged == res.history
    # every N steps, and once more at the end so steps 7-8 count for the best weights too
    assert [r["step"] for r in res.history] == [3, 6, 8]
    assert [r["epoch"] for r in res.history] == [0.75, 1.5, 2.0]
    assert [r["examples_seen"] for r in res.history] == [12, 24, 32]
    assert all({"val_loss", "val_accuracy", "train_loss"} <= set(r) for r in res.history)


def test_without_eval_every_one_record_per_epoch():
    logged = []
    _, res = run(data(16), data(8, seed=1), log=logged.append, epochs=3, batch_size=4)
    assert logged == res.history
    assert [r["epoch"] for r in res.history] == [1.0, 2.0, 3.0]
    assert [r["step"] for r in res.history] == [4, 8, 12]


# ---- early stopping -----------------------------------------------------------------------

@pytest.mark.parametrize("monitor", ["val_loss", "val_accuracy"])
@pytest.mark.parametrize("patience,records", [(None, 5), (1, 2), (2, 3)])
def test_patience_stops_when_validation_does_not_improve(monitor, patience, records):
    # learning_rate 0: the weights never move, every evaluation scores exactly the same,
    # so every evaluation after the first counts as not improving.
    _, res = run(data(8), data(8, seed=1), epochs=5, learning_rate=0.0, monitor=monitor, patience=patience)
    assert len(res.history) == records
    assert res.stopped_early == (patience is not None)
    assert res.best_step == res.history[0]["step"]


def test_patience_with_eval_every_stops_mid_epoch():
    _, res = run(data(16), data(8, seed=1), epochs=3, learning_rate=0.0, eval_every=1, patience=2)
    assert [r["step"] for r in res.history] == [1, 2, 3] and res.steps == 3 and res.stopped_early


# ---- best weights -------------------------------------------------------------------------

@pytest.mark.parametrize("keep_best", [True, False])
def test_keep_best_restores_the_best_evaluation(keep_best):
    # Validation labels are the training labels flipped: the better the model fits the
    # training set, the worse it scores, so the best evaluation is the first, not the last.
    snapshots = {}
    model = Tiny()
    _, res = run(data(16), data(8, flip=True, seed=1), log=lambda r: snapshots.update({r["step"]: weights(model)}),
                 model=model, epochs=4, learning_rate=0.1, keep_best=keep_best)
    last = res.history[-1]["step"]
    assert res.best_step != last and not same(snapshots[res.best_step], snapshots[last])  # precondition
    final = weights(model)
    if keep_best:
        assert same(final, snapshots[res.best_step])
    else:
        assert same(final, snapshots[last]) and not same(final, snapshots[res.best_step])


# ---- learning-rate schedules --------------------------------------------------------------

def expected_lrs(schedule: str, total: int, warmup: int, lr: float) -> list[float]:
    out = []
    for s in range(total):  # the lr the s-th optimizer step uses (the scheduler has stepped s times)
        if s < warmup:
            out.append(lr * s / warmup)
            continue
        progress = (s - warmup) / (total - warmup)
        out.append(lr * {"constant": 1.0, "linear": 1.0 - progress,
                         "cosine": 0.5 * (1.0 + math.cos(math.pi * progress))}[schedule])
    return out


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine"])
@pytest.mark.parametrize("warmup_ratio", [0.0, 0.2])
def test_schedule_shapes(optimizer_steps, schedule, warmup_ratio):
    # 10 examples, batch 2, 2 epochs: 10 steps, warmup int(0.2 * 10) = 2 steps.
    _, res = run(data(10), None, epochs=2, batch_size=2, learning_rate=0.01, schedule=schedule,
                 warmup_ratio=warmup_ratio)
    lrs = [s["lr"] for s in optimizer_steps]
    assert res.steps == len(lrs) == 10
    assert lrs == pytest.approx(expected_lrs(schedule, 10, int(warmup_ratio * 10), 0.01), abs=1e-12)
    warm = int(warmup_ratio * 10)
    assert all(a < b for a, b in zip(lrs[:warm + 1], lrs[1:warm + 1]))  # rising through warmup
    after = lrs[warm:]
    if schedule == "constant":
        assert after == pytest.approx([0.01] * len(after))
    else:
        assert all(a > b for a, b in zip(after, after[1:])) and after[-1] < 0.2 * 0.01  # decays towards 0


# ---- gradient clipping --------------------------------------------------------------------

@pytest.mark.parametrize("max_grad_norm", [1.0, None, 1e6])
def test_clipping_bounds_the_gradient_norm(optimizer_steps, monkeypatch, max_grad_norm):
    """Norms above c are scaled to c; norms within c are left alone without a multiply."""
    calls = []
    real = torch.nn.utils.clip_grads_with_norm_

    def spy(params, max_norm, total, *a, **k):
        calls.append((float(total), max_norm))
        return real(params, max_norm, total, *a, **k)

    monkeypatch.setattr(torch.nn.utils, "clip_grads_with_norm_", spy)
    # Embeddings scaled up 20x and a small lr: gradient norms of 10-35 at every step.
    model = Tiny()
    with torch.no_grad():
        model.emb.weight.mul_(20.0)
    _, res = run(data(16), None, model=model, epochs=2, learning_rate=1e-3, max_grad_norm=max_grad_norm)
    norms = [s["norm"] for s in optimizer_steps]
    assert len(norms) == res.steps == 8
    if max_grad_norm is None or max_grad_norm > 1e3:
        assert calls == [] and min(norms) > 1.0  # unclipped, and clipping would have mattered
    else:
        assert len(calls) == res.steps and all(m == max_grad_norm for _, m in calls)
        assert all(total > max_grad_norm for total, _ in calls)  # every step needed clipping
        assert all(n <= max_grad_norm * (1 + 1e-5) for n in norms)
        assert norms == pytest.approx([max_grad_norm] * len(norms), rel=1e-4)  # scaled to c, not below


# ---- monitor direction --------------------------------------------------------------------

class Scripted(type(TASK)):
    """The real task, except validation scores follow a script: loss and accuracy both
    best at the second evaluation, which is neither the first nor the last."""

    SCRIPT = [(0.6, 0.5), (0.2, 0.9), (0.4, 0.7), (0.3, 0.8)]

    def metrics(self, logits, labels):
        loss, acc = self.SCRIPT[self.calls]
        self.calls += 1
        return {"loss": loss, "accuracy": acc}


@pytest.mark.parametrize("monitor,pick", [("val_loss", min), ("val_accuracy", max)])
def test_monitor_direction(monitor, pick):
    task = Scripted(TASK.label_names)
    task.calls = 0
    res = fit(Tiny(), task, data(8), data(8, seed=1), cfg(epochs=4, monitor=monitor), PAD, CPU)
    scores = [r[monitor] for r in res.history]
    assert len(scores) == 4
    assert res.best_score == pick(scores) and res.best_step == res.history[1]["step"]


def test_unknown_monitor_is_an_error():
    with pytest.raises(ValueError, match="monitor 'val_pearson' not among"):
        run(data(8), data(8, seed=1), monitor="val_pearson")
