"""The logistic head: scikit-learn's ``LogisticRegression`` on the network's pooled frozen
features, folded into the model's own Linear head.

A regression on frozen sentence embeddings trains in seconds on a CPU and is the
baseline fine-tuning has to beat; after contrastive pair tuning (``--method setfit``,
``training/contrastive.py``) it is SetFit's head. Rather than keeping a pickled
scikit-learn object, the fitted regression becomes the network's head: with features
z-scored as z = (x - mean) / std, the logits coef z + intercept equal W' x + b' for

    W' = coef / std,   b' = intercept - coef . (mean / std)

so the saved directory is an ordinary one (``predict``, ``evaluate``, ``--quantize int8``,
the server and, for an encoder on [CLS], plain ``transformers.pipeline`` all work
unchanged). Two classes: scikit-learn gives one row ``coef`` for class 1; the head gets
rows -coef/2 and +coef/2, whose softmax is the regression's sigmoid.

>>> W, b = fold_logistic(np.array([[2.0, 0.0]]), np.array([1.0]), np.array([1.0, 0.0]),
...                      np.array([2.0, 1.0]), n_classes=2)
>>> W.tolist(), b.tolist()
([[-0.5, -0.0], [0.5, 0.0]], [0.0, 0.0])
"""
from __future__ import annotations

import warnings
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from ..config import ModelConfig, TrainConfig
from ..data.batching import Encoded, iterate, sorted_batches
from ..errors import LmClassifyError
from ..inference.standardize import Standardizer  # the z-scoring `embed --standardize` applies
from .device import autocast
from .loop import FitResult, predict_logits

LOGISTIC = "logistic"
# SetFit's body training (sentence-transformers defaults as SetFit sets them): one pass over
# the pairs, batch 16, lr 2e-5, linear decay after 10 % warmup. Options a recipe or the user
# gave are kept.
SETFIT_DEFAULTS = {"epochs": 1, "batch_size": 16, "learning_rate": 2e-5, "weight_decay": 0.01,
                   "schedule": "linear", "warmup_ratio": 0.1}


def uses_logistic_head(mc: ModelConfig) -> bool:
    return mc.head == LOGISTIC


def method_defaults(mc: ModelConfig, tc: TrainConfig, task_kind: str, family: str) -> list[str]:
    """Resolve what ``--head logistic`` and ``--method setfit`` imply (in place, before the
    family defaults fill the rest); returns the names filled. Encoders pool by mean: what
    sentence encoders (all-MiniLM-L6-v2) were trained to produce."""
    filled = []
    if mc.embedding_norm == "auto" and task_kind != "token":  # token models pool nothing: left unset
        # Unit sentence vectors, fitted as they are, beat z-scored ones for an encoder's
        # logistic head, frozen or SetFit-tuned, at 8 and 64 per class on AG News, SST-2
        # and TREC (bench/results/few_labels.md); decoders were not measured: left as they are.
        logistic = tc.method == "setfit" or mc.head == LOGISTIC
        mc.embedding_norm = "l2" if logistic and family == "encoder" else "none"
        filled.append("embedding_norm")
    if tc.method == "setfit":
        if mc.head == "mlp":
            raise LmClassifyError("--method setfit ends in a logistic-regression head; use --head logistic, not mlp")
        if mc.train_layers == "head":
            raise LmClassifyError("--method setfit tunes the encoder, which --train-layers head freezes; drop "
                                  "--method setfit for the frozen-feature head (--head logistic)")
        mc.head = LOGISTIC
        for key, value in SETFIT_DEFAULTS.items():
            if getattr(tc, key) is None:
                setattr(tc, key, value)
                filled.append(key)
    if mc.head != LOGISTIC:
        return filled
    if task_kind != "single":
        raise LmClassifyError(f"--head logistic fits a single-label classifier; this is a {task_kind} task "
                              f"(use --head linear)")
    if tc.method != "setfit":
        if mc.train_layers not in (None, "head"):
            warnings.warn(f"--head logistic fits the head on frozen features: training no blocks (not "
                          f"--train-layers {mc.train_layers}); add --method setfit to tune the encoder first",
                          stacklevel=3)
        if mc.train_layers != "head":
            mc.train_layers = "head"
            filled.append("train_layers")
    if mc.pooling == "auto" and family == "encoder":
        mc.pooling = "mean"
        filled.append("pooling")
    return filled


def loop_examples(n_train: int, tc: TrainConfig) -> int:
    """What the training loop iterates over for ``n_train`` texts: the texts, or for
    ``--method setfit`` its 2 R N pairs (the progress lines' step count)."""
    return 2 * tc.pair_iterations * n_train if tc.method == "setfit" else n_train


@torch.inference_mode()
def head_inputs(model: nn.Module, enc: Encoded, pad_id: int, device: torch.device,
                batch_size: int = 64) -> np.ndarray:
    """(N, D) float64: what the network feeds its head for every example, in input order
    (the pooled embedding; [u, v, |u-v|] for siamese pairs), read by a hook on the head."""
    model.eval()
    out = np.zeros((len(enc), model.head.in_features), dtype=np.float64)
    seen: list[torch.Tensor] = []
    hook = model.head.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    try:
        use_features = enc.features is not None
        for idx, batch in iterate(enc, sorted_batches(enc.lengths, batch_size), pad_id, use_features):
            seen.clear()
            with autocast(device):
                model(**{k: v.to(device) for k, v in batch.items() if k != "labels"})
            out[idx] = seen[-1].float().cpu().numpy()
    finally:
        hook.remove()
    return out


def fold_logistic(coef: np.ndarray, intercept: np.ndarray, mean: np.ndarray, std: np.ndarray,
                  n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(W (C, D), b (C,)) of one Linear that computes the regression's logits on raw features."""
    coef, intercept = np.asarray(coef, dtype=np.float64), np.asarray(intercept, dtype=np.float64)
    if n_classes == 2 and coef.shape[0] == 1:
        coef, intercept = np.concatenate([-coef / 2, coef / 2]), np.concatenate([-intercept / 2, intercept / 2])
    W = coef / std  # (C, D)
    return W, intercept - W @ mean


def fit_regression(X: np.ndarray, y: np.ndarray, tc: TrainConfig, n_classes: int,
                   class_weights: Optional[torch.Tensor] = None, unit: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's multinomial ``LogisticRegression`` (L2, ``C = tc.logistic_c``) on the
    features, z-scored first when ``tc.logistic_standardize``; returns the folded (W, b).
    ``unit``: the features are unit vectors (``--embedding-norm l2``), fitted as they are,
    as SetFit does: z-scoring would give each a length of ~sqrt(D) again, and with 8
    texts per class C=1 then barely regularises (AG News, 8 per class, 5 seeds: see
    bench/results/few_labels.md)."""
    from sklearn.linear_model import LogisticRegression

    if tc.logistic_standardize and not unit:
        stats = Standardizer().fit(X)
        mean, std = stats.mean_, stats.std_
    else:
        mean, std = np.zeros(X.shape[1]), np.ones(X.shape[1])
    weights = None if class_weights is None else {i: float(w) for i, w in enumerate(class_weights.tolist())}
    clf = LogisticRegression(C=tc.logistic_c, max_iter=1000, class_weight=weights, random_state=tc.seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*did not converge.*")  # tiny separable sets: fine as is
        clf.fit((X - mean) / std, y)
    if list(clf.classes_) != list(range(n_classes)):
        raise LmClassifyError("--head logistic needs every class in the training labels")
    return fold_logistic(clf.coef_, clf.intercept_, mean, std, n_classes)


def set_linear(head: nn.Module, W: np.ndarray, b: np.ndarray) -> None:
    """Write (W, b) into the network's Linear head."""
    if not isinstance(head, nn.Linear) or head.bias is None:
        raise RuntimeError("the logistic head needs a Linear head with a bias")
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(W, dtype=head.weight.dtype))
        head.bias.copy_(torch.as_tensor(b, dtype=head.bias.dtype))


def fit_logistic_head(model: nn.Module, task, train: Encoded, val: Optional[Encoded], tc: TrainConfig, pad_id: int,
                      device: torch.device, log: Optional[Callable[[dict], None]] = None, **loop) -> FitResult:
    """``--head logistic``: (``--method setfit``: contrastive pair tuning first, through the
    loop, with ``loop``'s checkpoints/resume/stop), then the regression on the pooled
    features of ``train``, folded into ``model.head``. One more record is logged: the
    head's train loss and accuracy and the validation metrics."""
    result = FitResult()
    if tc.method == "setfit":
        from .contrastive import train_contrastive

        result = train_contrastive(model, train, tc, pad_id, device, log=log, **loop)
    X = head_inputs(model, train, pad_id, device, tc.eval_batch_size)
    W, b = fit_regression(X, np.asarray(train.labels), tc, len(task.classes), task.class_weights,
                          unit=model.pooler.normalize)
    set_linear(model.head, W, b)
    with torch.no_grad():
        logits = torch.as_tensor(X @ W.T + b, dtype=torch.float32)  # (N, C): the head on the same features
        labels = torch.as_tensor(train.labels)
        rec = {"step": result.steps, "epoch": float(tc.epochs if tc.method == "setfit" else 1),
               "examples_seen": (result.history[-1]["examples_seen"] if result.history else 0) + len(train),
               "train_loss": float(task.loss(logits, labels)), "learning_rate": 0.0,
               "train_accuracy": float((logits.argmax(-1) == labels).float().mean())}
    if val is not None and len(val):
        m = task.metrics(predict_logits(model, task, val, pad_id, device, tc.eval_batch_size), val.labels)
        rec.update({f"val_{k}": m[k] for k in task.record_keys if k in m})
    result.history.append(rec)
    if log:
        log(rec)
    model.eval()
    return result
