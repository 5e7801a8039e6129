"""PNG plots: loss and accuracy vs examples seen (train vs validation), confusion matrix.

Plots are written to files only (Agg backend, no ``show``) and every figure is closed,
so training on a headless machine neither blocks nor leaks memory.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

# record key prefix -> legend label
_SPLITS = {"train": "training", "val": "validation"}


def _num(v) -> Optional[float]:
    """A finite float, or None for missing/None/NaN/non-numeric values."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def _x_key(records: list[dict]) -> str:
    # Examples seen is comparable across batch sizes; fall back to optimiser steps.
    for key in ("examples_seen", "step"):
        if any(_num(r.get(key)) is not None for r in records):
            return key
    return ""


def _epoch_axis(ax, records: list[dict], x_key: str) -> None:
    """Epochs on a top axis, ticks placed by interpolating epoch -> x (as in Raschka's plot_values)."""
    pts = sorted({(x, e) for r in records
                  if (x := _num(r.get(x_key))) is not None and (e := _num(r.get("epoch"))) is not None})
    xs, eps = [p[0] for p in pts], [p[1] for p in pts]
    # np.interp needs increasing epochs; anything else (merged runs) gets no top axis
    if not pts or any(b < a for a, b in zip(eps, eps[1:])):
        return
    top = ax.twiny()
    top.set_xlim(ax.get_xlim())
    ticks = [t for t in MaxNLocator(nbins=6).tick_values(eps[0], eps[-1]) if eps[0] <= t <= eps[-1]] or eps[:1]
    top.set_xticks(np.interp(ticks, eps, xs))
    top.set_xticklabels([f"{t:g}" for t in ticks])
    top.set_xlabel("epoch")


def plot_training_curves(records: list[dict], out_dir: Path,
                         metrics: tuple[str, ...] = ("loss", "accuracy")) -> list[Path]:
    """Write ``<metric>.png`` (default ``loss.png`` and ``accuracy.png``) from eval-step
    records; return the paths written.

    Each record is one evaluation: ``examples_seen`` (x axis; ``step`` if absent), ``epoch``
    (top axis), and ``train_<metric>``/``val_<metric>``, e.g. ``train_loss``/``val_loss``. Missing,
    None or NaN values are skipped point by point; a plot with no points at all is not written.
    """
    out_dir = Path(out_dir)
    x_key = _x_key(records)
    written: list[Path] = []
    for metric in metrics:
        series = {}
        for split in _SPLITS:
            pts = [(_num(r.get(x_key)) if x_key else i, _num(r.get(f"{split}_{metric}")))
                   for i, r in enumerate(records)]
            series[split] = sorted((x, y) for x, y in pts if x is not None and y is not None)
        if not any(series.values()):
            continue
        fig, ax = plt.subplots(figsize=(5.5, 3.5))
        try:
            for split, pts in series.items():
                if pts:
                    ls = "-" if split == "train" else "-."
                    ax.plot(*zip(*pts), ls, marker="o", markersize=3, label=_SPLITS[split])
            ax.set_xlabel({"examples_seen": "examples seen", "step": "step"}.get(x_key, "evaluation"))
            ax.set_ylabel(metric)
            ax.legend()
            if x_key:
                _epoch_axis(ax, records, x_key)
            fig.tight_layout()
            out_dir.mkdir(parents=True, exist_ok=True)
            path = out_dir / f"{metric}.png"
            fig.savefig(path, dpi=110)
        finally:
            plt.close(fig)
        written.append(path)
    return written


def plot_confusion_matrix(cm: list[list[int]], label_names: list[str], path: Path,
                          title: str = "confusion matrix (rows true, columns predicted)") -> Path:
    """An annotated heatmap of ``cm`` (rows = true, columns = predicted, as from classification_metrics)."""
    a = np.asarray(cm, dtype=float)
    n = len(label_names)
    if n == 0 or a.shape != (n, n):
        raise ValueError(f"confusion matrix of shape {a.shape} does not match {n} label names")
    side = min(1.0 * n + 2.5, 14.0)  # grows with the classes, but stays a sane size
    font = max(6, min(10, int(120 / n)))
    fig, ax = plt.subplots(figsize=(side + 1, side))
    try:
        im = ax.imshow(a, cmap="Blues", vmin=0)
        ax.set_xticks(range(n), [str(x) for x in label_names], rotation=45, ha="right", fontsize=font)
        ax.set_yticks(range(n), [str(x) for x in label_names], fontsize=font)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title)
        hi = a.max()
        for i in range(n):
            for j in range(n):
                v = a[i, j]
                # white text on dark cells so the count stays readable
                ax.text(j, i, f"{v:.0f}" if v.is_integer() else f"{v:.3g}", ha="center", va="center", fontsize=font,
                        color="white" if hi > 0 and v > hi / 2 else "black")
        fig.colorbar(im, ax=ax, fraction=0.046)
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return path
