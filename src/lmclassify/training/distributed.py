"""Training on several processes with PyTorch's own stack: ``torchrun`` starts the
processes, ``torch.distributed`` connects them (gloo on CPU, nccl for CUDA tensors) and
``DistributedDataParallel`` averages the gradients. This module wraps the one loop; it
does not fork it.

  torchrun --nproc-per-node 2 -m lmclassify train --recipe sms-spam -o runs/spam

How the loop uses it (``training/loop.py``):
- every rank draws the same length-grouped batch order (same seed), and each global batch
  is split across ranks (``shard``); each rank's mean loss is scaled by its slice's share
  so DDP's average of the ranks' gradients is the 1-process gradient of the global batch;
- the running statistics (loss, correct, tokens) are summed over ranks every batch
  (``sum_over_ranks``), so every rank logs and checkpoints the same numbers;
- evaluation runs each rank on a share of the batches and gathers the outputs
  (``gather_rows``): every rank sees the same metrics, so early stopping and the best
  weights agree;
- only rank 0 writes (run folder, checkpoints, metrics log, progress, stdout).

The feature cache is computed whole by every rank (simple, and correct by construction:
the frozen prefix's outputs need no gathering); a rank that finds the run folder's cache
file already published by a faster one reads it instead. Dropout masks are drawn per
rank for its slice, so with dropout a run on N processes is equivalent to the 1-process
run in distribution, not in value; without dropout the weights agree to rounding.

Launched without torchrun (no ``WORLD_SIZE``), every helper is a no-op and the loop is
exactly the 1-process loop.
"""
from __future__ import annotations

import contextlib
import functools
import os
import signal
from typing import Callable, Sequence, TypeVar

import numpy as np
import torch
import torch.distributed as dist

from ..errors import LmClassifyError

F = TypeVar("F", bound=Callable)


class PeerFailed(LmClassifyError):
    """Another process of the job is gone (its collective failed, or torchrun stopped us)."""


def launched() -> bool:
    """Started by torchrun (or anything setting its variables) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank; torchrun's ``RANK`` before the process group exists."""
    return dist.get_rank() if active() else int(os.environ.get("RANK", "0")) if launched() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0: the one process that writes files and prints."""
    return rank() == 0


def device_for_rank(device: torch.device) -> torch.device:
    """Under torchrun each process drives its own GPU: ``cuda`` means ``cuda:LOCAL_RANK``."""
    if launched() and device.type == "cuda" and device.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def init(device: torch.device) -> None:
    """Join torchrun's process group (idempotent; nothing without torchrun). CPU tensors
    go through gloo; with a GPU, CUDA tensors (DDP's gradients) go through nccl."""
    if not launched() or active():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
        backend = "cpu:gloo,cuda:nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend=backend)
    # torchrun stops the other processes with SIGTERM when one fails: say so in one line
    signal.signal(signal.SIGTERM, _stopped)


# What a surviving rank says, however it learns of the death (torchrun's SIGTERM or the
# broken collective: which comes first is a race)
PEER_FAILED = "another process of this torchrun job failed (its message is above)"


def _stopped(signum, frame):
    raise PeerFailed(f"{PEER_FAILED}; torchrun stopped this one (rank {rank()})")


def barrier() -> None:
    if active():
        dist.barrier()


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` inside DistributedDataParallel (its gradients averaged over ranks in
    backward), or ``model`` itself in one process. The caller keeps using ``model`` for
    everything but the training forward (parameter names, evaluation, checkpoints).
    Buffers are not synced per step: a transformer's are constants (positions, rotary
    frequencies), and the frozen prefix holds most of them. Every trainable parameter
    gets a gradient in every backward (a tagger's CRF through the loss, not the forward),
    so DDP need not search the graph for unused ones (``find_unused_parameters`` would
    wrongly count the CRF as unused)."""
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                   forward_sync_buffers=False)


def no_sync(ddp: torch.nn.Module, sync: bool):
    """Gradient accumulation: all-reduce only on the micro-batch that ends a step."""
    ddp = getattr(ddp, "_orig_mod", ddp)  # under torch.compile
    if sync or not active() or not hasattr(ddp, "no_sync"):
        return contextlib.nullcontext()
    return ddp.no_sync()


def shard(idx: np.ndarray) -> tuple[np.ndarray, float]:
    """This rank's part of one global batch, and the factor its mean loss is scaled by.

    The batch is cut into contiguous slices (neighbours have similar lengths: little
    padding). A loss that is a mean over the slice, times ``len(slice) * world / len(batch)``,
    makes DDP's mean of the ranks' gradients the gradient of the global batch's mean loss,
    also when slices differ in size. A rank whose slice is empty (a last batch smaller
    than the world) still runs one example, weighted 0, so every rank runs the same
    backward.

    >>> shard(np.arange(5))   # one process
    (array([0, 1, 2, 3, 4]), 1.0)
    """
    w, r = world_size(), rank()
    if w == 1:
        return idx, 1.0
    mine = np.array_split(idx, w)[r]
    if len(mine) == 0:
        return idx[:1], 0.0
    return mine, len(mine) * w / len(idx)


def sum_over_ranks(*values: float) -> tuple[float, ...]:
    """Each value summed over ranks (float64: counts stay exact); unchanged in one process."""
    if not active():
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return tuple(t.tolist())


def any_rank(flag: bool) -> bool:
    """True on every rank when it is true on one (a Ctrl-C seen by one process stops all)."""
    return bool(sum_over_ranks(float(flag))[0]) if active() else flag


def my_batches(batches: Sequence) -> Sequence:
    """Every ``world``-th batch, for evaluation; ``gather_rows`` joins the outputs."""
    return batches[rank()::world_size()] if active() else batches


def gather_rows(rows: list) -> list:
    """Per-example outputs, each rank holding its own (others None), joined on every rank."""
    if not active():
        return rows
    mine = {i: r for i, r in enumerate(rows) if r is not None}
    parts: list = [None] * world_size()
    dist.all_gather_object(parts, mine)
    out = list(rows)
    for part in parts:
        for i, r in part.items():
            out[i] = r
    return out


def _peer_failure(e: BaseException) -> bool:
    """A collective that failed because another process is gone (gloo: connection closed
    or reset by peer; nccl: a communicator error)."""
    if isinstance(e, dist.DistError):
        return True
    msg = str(e).lower()
    return isinstance(e, RuntimeError) and any(s in msg for s in ("gloo", "nccl", "connection closed by peer",
                                                                    "connection reset by peer"))


def failures_as_one_line(job: F) -> F:
    """A job under torchrun: a failure caused by another process's death becomes one line
    (``PeerFailed``), printed by rank 0 only, instead of a traceback from every rank."""
    @functools.wraps(job)
    def run(*args, **kwargs):
        try:
            return job(*args, **kwargs)
        except LmClassifyError:
            raise
        except Exception as e:
            if launched() and _peer_failure(e):
                raise PeerFailed(f"{PEER_FAILED}; this one (rank {rank()}) stopped") from None
            raise
        finally:
            if active():  # the job is over: torchrun's SIGTERM now ends the process without a word
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return run  # type: ignore[return-value]


__all__ = ["PeerFailed", "launched", "active", "rank", "world_size", "is_main", "device_for_rank", "init",
           "barrier", "wrap", "no_sync", "shard", "sum_over_ranks", "any_rank", "my_batches", "gather_rows",
           "failures_as_one_line"]
