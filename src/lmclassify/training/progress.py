"""What a person watching a run sees, whatever stdout is: one line per evaluation on
stderr, and optionally TensorBoard event files. Both are ``log`` callbacks of the loop,
fed the same records as ``metrics.jsonl``."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from tqdm.auto import tqdm

from ..errors import LmClassifyError

REPORT_TO = ("none", "tensorboard")


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"


class ProgressLines:
    """``epoch 2/5  step 262/655  train_loss 0.1234  val_accuracy 0.9866 (best 0.9866)
    elapsed 1m02s  eta 2m30s``; the ETA counts only steps taken in this process, so a
    resumed run estimates from its own pace."""

    def __init__(self, total_steps: int, epochs: int, monitor: str, higher_is_better: bool, start_step: int = 0):
        self.total, self.epochs, self.monitor, self.higher = total_steps, epochs, monitor, higher_is_better
        self.start_step, self.t0, self.best = start_step, time.perf_counter(), None

    def __call__(self, rec: dict) -> None:
        elapsed = time.perf_counter() - self.t0
        done = rec["step"] - self.start_step
        eta = elapsed / done * (self.total - rec["step"]) if done > 0 else None
        parts = [f"epoch {rec['epoch']:g}/{self.epochs}", f"step {rec['step']}/{self.total}",
                 f"train_loss {rec['train_loss']:.4f}"]
        score = rec.get(self.monitor)
        if score is not None:
            if self.best is None or (score > self.best if self.higher else score < self.best):
                self.best = score
            parts.append(f"{self.monitor} {score:.4f} (best {self.best:.4f})")
        parts.append(f"elapsed {_clock(elapsed)}" + (f"  eta {_clock(eta)}" if eta is not None else ""))
        tqdm.write("  ".join(parts), file=sys.stderr)


class TensorBoardLog:
    """Losses, metrics and the learning rate per evaluation, as TensorBoard scalars
    (``train/loss``, ``val/accuracy``, ``train/learning_rate``, ...)."""

    def __init__(self, logdir: Path):
        self.writer = tensorboard_writer(logdir)

    def __call__(self, rec: dict) -> None:
        for key, value in rec.items():
            if key in ("step", "epoch") or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            section, _, name = key.partition("_")
            tag = f"{section}/{name}" if section in ("train", "val") else f"train/{key}"
            self.writer.add_scalar(tag, value, rec["step"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def tensorboard_writer(logdir: Optional[Path] = None):
    """torch's SummaryWriter, or one line saying what to install (checked before training)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise LmClassifyError("--report-to tensorboard needs the tensorboard package: pip install tensorboard") \
            from None
    return SummaryWriter(str(logdir)) if logdir is not None else None


def fan_out(callbacks: Sequence[Callable[[dict], None]]) -> Callable[[dict], None]:
    def log(rec: dict) -> None:
        for cb in callbacks:
            cb(rec)
    return log
