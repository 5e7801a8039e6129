"""Checkpoints the one loop can resume from exactly.

A checkpoint is a folder holding everything the loop's future depends on: the trainable
weights, the best-so-far weights, the optimizer and scheduler state, every random
generator's state (python, numpy, torch, and the batch-order generator as it was at the
start of the epoch), and the loop's counters and metrics history (``LoopState``). It is
written into a temporary sibling and renamed into place, so a crash while writing leaves
the previous checkpoint whole; there is one folder (the last), and it carries the best
weights, so pruning is implicit.

Only tensors and plain data are stored: safetensors for weights, ``torch.save`` of
optimizer/scheduler state read back with ``weights_only=True``, JSON for the rest.
"""
from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..errors import LmClassifyError
from .faults import maybe_die

NAME = "checkpoint"


@dataclass
class LoopState:
    """Where the loop is and what it has counted: enough to continue bit for bit."""

    epoch: int = 0  # the epoch in progress (0-based)
    batch: int = 0  # the next batch of that epoch's order
    epoch_rng: Optional[dict] = None  # the batch-order generator's state when this epoch's order was drawn
    steps: int = 0
    seen: int = 0
    train_tokens: int = 0
    run_loss: float = 0.0  # since the last evaluation
    run_correct: float = 0.0
    run_n: int = 0
    best_score: Optional[float] = None
    best_step: Optional[int] = None
    bad_evals: int = 0
    history: list = field(default_factory=list)
    stopped_early: bool = False
    finished: bool = False  # training is over (best weights restored); only evaluation and saving remain


@dataclass
class Resume:
    """A loaded checkpoint, as the loop applies it."""

    state: LoopState
    weights: dict[str, torch.Tensor]
    best: Optional[dict[str, torch.Tensor]]
    optimizer: dict
    scheduler: dict
    rng: dict


def rng_states() -> dict:
    """Every global generator's state, as JSON-ready data."""
    v, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": [v, list(internal), gauss], "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
            "torch": torch.get_rng_state().tolist()}


def set_rng_states(states: dict) -> None:
    v, internal, gauss = states["python"]
    random.setstate((v, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(states["torch"], dtype=torch.uint8))


class Checkpoints:
    """The checkpoint folder of one run: ``save`` at step boundaries, ``load`` to resume."""

    def __init__(self, directory: Path, save_every: Optional[int] = None):
        self.directory = Path(directory)
        self.save_every = save_every

    @property
    def path(self) -> Path:
        return self.directory / NAME

    def exists(self) -> bool:
        return (self.path / "state.json").is_file()

    def save(self, state: LoopState, model: torch.nn.Module, optimizer, scheduler,
             best: Optional[dict[str, torch.Tensor]]) -> None:
        tmp = self.directory / f".{NAME}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        trainable = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
        save_file(trainable, str(tmp / "weights.safetensors"))
        if best is not None:
            save_file({n: t.detach().cpu().contiguous() for n, t in best.items()}, str(tmp / "best.safetensors"))
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "optimizer.pt")
        (tmp / "rng.json").write_text(json.dumps(rng_states()))
        maybe_die("checkpoint-write")
        (tmp / "state.json").write_text(json.dumps(asdict(state)) + "\n")
        old = self.directory / f".{NAME}.old-{os.getpid()}"
        if self.path.exists():
            os.replace(self.path, old)
        os.replace(tmp, self.path)
        shutil.rmtree(old, ignore_errors=True)

    def load(self) -> Optional[Resume]:
        if not self.exists():
            return None
        try:
            state = LoopState(**json.loads((self.path / "state.json").read_text()))
            weights = load_file(str(self.path / "weights.safetensors"))
            best_file = self.path / "best.safetensors"
            best = load_file(str(best_file)) if best_file.is_file() else None
            rest = torch.load(self.path / "optimizer.pt", weights_only=True)
            rng = json.loads((self.path / "rng.json").read_text())
        except Exception as e:  # a tampered or truncated checkpoint: say which, never a traceback
            raise LmClassifyError(f"{self.path} is damaged ({type(e).__name__}: {str(e).splitlines()[0]}); "
                                  f"start over with --overwrite") from None
        return Resume(state, weights, best, rest["optimizer"], rest["scheduler"], rng)
