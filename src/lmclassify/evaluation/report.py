"""report.md: what a reader needs to judge the run, and the config to redo it.

The report is rendered from the same ``metrics`` dict that is written to ``metrics.json``,
so the two cannot disagree.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

SPLITS = ("train", "validation", "test")
SUMMARY_COLUMNS = ("loss", "accuracy", "precision_macro", "recall_macro", "f1_macro")
_DASH = "—"


def _f(v: Any) -> str:
    """4 decimals, or a dash for a missing/non-numeric value (so a column never looks like 0)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
        return _DASH
    return f"{v:.4f}"


def _cell(v: Any) -> str:
    # a "|" in a class name would split the table cell
    return str(v).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: list[Sequence[Any]]) -> list[str]:
    return (["| " + " | ".join(map(_cell, header)) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(map(_cell, row)) + " |" for row in rows])


def _run_facts(metrics: dict) -> list[str]:
    """Top-level scalars other than the splits (train_seconds, steps, ...) as bullet points."""
    facts = []
    if isinstance(metrics.get("train_seconds"), (int, float)):
        facts.append(f"- train_seconds: {metrics['train_seconds']:.1f}")
    p = metrics.get("parameters")
    if isinstance(p, dict) and {"trainable", "total"} <= p.keys():
        facts.append(f"- parameters: {p['trainable']:,} trainable of {p['total']:,}")
    for k, v in metrics.items():
        if k not in SPLITS and k not in ("train_seconds", "parameters") and \
                (v is None or isinstance(v, (bool, int, float, str))):
            facts.append(f"- {k}: {_DASH if v is None else v}")
    return facts


def render_report(metrics: dict, config: dict, *, title: str, notes: Sequence[str] = (),
                  plots: Sequence[str] = (), columns: Sequence[str] = SUMMARY_COLUMNS) -> str:
    """Markdown for ``report.md``.

    ``metrics`` holds ``train``/``validation``/``test`` (each a task's metrics dict; any
    split may be absent; ``columns``, the task's ``report_columns``, pick the summary's) plus optional top-level run facts such as ``train_seconds``. Sections:
    a summary table per split, run facts, per-class table and confusion matrix of the test
    split (or the last split present), notes, plots (file names relative to the report) and
    the config as JSON, so the run can be reproduced from the report alone.
    """
    lines = [f"# {title}", ""]
    splits = [s for s in SPLITS if isinstance(metrics.get(s), dict)]
    if splits:
        # by max_length: texts cut, and texts longer (cut, or read in windows: --long-text)
        cut = tuple(c for c in ("truncated", "over_max_length") if any(c in metrics[s] for s in splits))
        rows = [[s, metrics[s].get("n", _DASH)] + [_f(metrics[s].get(c)) for c in columns]
                + [metrics[s].get(c, _DASH) for c in cut] for s in splits]
        lines += ["## Summary", ""] + _table(("split", "n") + tuple(columns) + cut, rows)
    else:
        lines.append("No split was evaluated.")
    facts = _run_facts(metrics)
    if facts:
        lines += ["", "## Run", ""] + facts

    if splits:
        last = splits[-1]
        m = metrics[last]
        if "positive_label" in m:
            lines += ["", f"Positive class `{m['positive_label']}` ({last}): precision {_f(m.get('precision'))}, "
                          f"recall {_f(m.get('recall'))}, f1 {_f(m.get('f1'))}."]
        if m.get("per_class"):
            rows = [[name, _f(c.get("precision")), _f(c.get("recall")), _f(c.get("f1")), c.get("support", _DASH)]
                    for name, c in m["per_class"].items()]
            lines += ["", f"## Per class ({last})", ""] + _table(("class", "precision", "recall", "f1", "support"), rows)
        if m.get("confusion_matrix"):
            names = m.get("labels") or [str(i) for i in range(len(m["confusion_matrix"]))]
            rows = [[n] + list(row) for n, row in zip(names, m["confusion_matrix"])]
            lines += ["", f"## Confusion matrix ({last})", "", "Rows are true classes, columns predicted.", ""]
            lines += _table(["true \\ predicted"] + list(names), rows)

    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots]
    lines += ["", "## Configuration", "", "```json", json.dumps(config, indent=2, default=str), "```", ""]
    return "\n".join(lines)


def write_report(path: Path, text: str) -> Path:
    """Write ``text`` as UTF-8 (the dash and class names need it); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
