"""Options every training command shares (train, train-tokens), declared once so their
names, defaults and help cannot drift apart."""
from __future__ import annotations

import argparse
from typing import Optional, Sequence


def add_training_options(p: argparse.ArgumentParser, monitor_help: str,
                         monitor_choices: Optional[Sequence[str]] = None) -> argparse._ArgumentGroup:
    """The "training" group plus --output/--overwrite. Options whose default is None may be
    filled by a recipe; the group is returned for command-specific extras."""
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--learning-rate", "--lr", type=float)
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--schedule", choices=["constant", "linear", "cosine"], default=None,
                   help="default: constant for train, linear for train-tokens, or the recipe's")
    t.add_argument("--warmup-ratio", type=float, default=None, help="default: 0 for train, 0.1 for train-tokens")
    t.add_argument("--grad-accum", type=int, default=1)
    t.add_argument("--max-grad-norm", type=float, default=1.0, help="0 disables clipping")
    t.add_argument("--seed", type=int, default=123)
    t.add_argument("--eval-every", type=int, default=None, help="evaluate every N steps (default: each epoch)")
    t.add_argument("--patience", type=int, default=None, help="early stopping after N evaluations without improvement")
    t.add_argument("--monitor", default=None, choices=monitor_choices, help=monitor_help)
    t.add_argument("--no-keep-best", dest="keep_best", action="store_false", help="keep the last weights, not the best")
    t.add_argument("--no-feature-cache", dest="feature_cache", action="store_false")
    t.add_argument("--compile", action="store_true",
                   help="torch.compile the training forward: worth its start-up cost on a GPU or a long run")
    t.add_argument("--device", default="auto")
    p.add_argument("--output", "-o", required=True, help="output model directory")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    return t
