"""report.md: what a reader needs to judge the run, and the config to redo it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

_COLS = ("loss", "accuracy", "precision_macro", "recall_macro", "f1_macro")


def _f(v) -> str:
    return f"{v:.4f}" if isinstance(v, (int, float)) else "—"


def render_report(metrics: dict, config: dict, *, title: str, notes: Sequence[str] = (),
                  plots: Sequence[str] = ()) -> str:
    lines = [f"# {title}", "", "| split | n | " + " | ".join(_COLS) + " |", "|---" * (len(_COLS) + 2) + "|"]
    splits = [s for s in ("train", "validation", "test") if s in metrics]
    for s in splits:
        m = metrics[s]
        lines.append(f"| {s} | {m.get('n', '—')} | " + " | ".join(_f(m.get(c)) for c in _COLS) + " |")
    if "train_seconds" in metrics:
        lines += ["", f"Training took {metrics['train_seconds']:.1f} s"
                  + (f" ({metrics['steps']} optimiser steps)" if "steps" in metrics else "") + "."]
    if "parameters" in metrics:
        p = metrics["parameters"]
        lines.append(f"Trainable parameters: {p['trainable']:,} of {p['total']:,}.")
    if splits:
        last = splits[-1]
        m = metrics[last]
        lines += ["", f"## Per class ({last})", "", "| class | precision | recall | f1 | support |", "|---|---|---|---|---|"]
        for name, c in m.get("per_class", {}).items():
            lines.append(f"| {name} | {_f(c['precision'])} | {_f(c['recall'])} | {_f(c['f1'])} | {c['support']} |")
        if "confusion_matrix" in m:
            names = m["labels"]
            lines += ["", f"## Confusion matrix ({last}; rows true, columns predicted)", "",
                      "| true \\ predicted | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
            lines += [f"| {n} | " + " | ".join(map(str, row)) + " |" for n, row in zip(names, m["confusion_matrix"])]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots]
    lines += ["", "## Configuration", "", "```json", json.dumps(config, indent=2, default=str), "```", ""]
    return "\n".join(lines)


def write_report(path: Path, text: str) -> None:
    Path(path).write_text(text, encoding="utf-8")
