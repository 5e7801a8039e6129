"""PNG plots: loss and accuracy vs examples seen (train vs validation), confusion matrix."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_training_curves(records: list[dict], out_dir: Path) -> list[Path]:
    """``loss.png`` and ``accuracy.png`` against examples seen, epochs on a top axis."""
    written = []
    for metric in ("loss", "accuracy"):
        series = {split: [(r["examples_seen"], r[f"{split}_{metric}"]) for r in records
                          if r.get(f"{split}_{metric}") is not None]
                  for split in ("train", "val")}
        if not any(series.values()):
            continue
        fig, ax = plt.subplots(figsize=(5.5, 3.5))
        for split, pts in series.items():
            if pts:
                ax.plot(*zip(*pts), marker="o", label={"train": "training", "val": "validation"}[split])
        ax.set_xlabel("examples seen")
        ax.set_ylabel(metric)
        ax.legend()
        ep = [(r["examples_seen"], r["epoch"]) for r in records if "epoch" in r]
        if ep:
            top = ax.twiny()
            top.set_xlim(ax.get_xlim())
            top.set_xticks([x for x, _ in ep])
            top.set_xticklabels([f"{e:g}" for _, e in ep])
            top.set_xlabel("epoch")
        fig.tight_layout()
        path = Path(out_dir) / f"{metric}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def plot_confusion_matrix(cm: list[list[int]], label_names: list[str], path: Path,
                          title: str = "confusion matrix (test)") -> Path:
    n = len(label_names)
    fig, ax = plt.subplots(figsize=(1.2 * n + 2.5, 1.2 * n + 2))
    im = ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), label_names, rotation=45, ha="right")
    ax.set_yticks(range(n), label_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    hi = max(max(row) for row in cm) if cm else 0
    for i, row in enumerate(cm):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > hi / 2 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
