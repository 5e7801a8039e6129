"""Command line: one sub-command per job, each a thin shell over an importable function.

User errors (LmClassifyError) become one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from typing import Optional, Sequence

from ..errors import LmClassifyError


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as every other error: one line on stderr, exit status 2 (``--help``
    still shows the usage)."""

    def error(self, message: str):
        self.exit(2, f"lmclassify: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from . import embed, evaluate, generate, predict, pretrain, serve, train, zero_shot

    parser = OneLineParser(prog="lmclassify", description="Turn pretrained language models into text classifiers.")
    sub = parser.add_subparsers(dest="command", required=True)
    for mod in (train, evaluate, predict, zero_shot, serve, embed, generate, pretrain):
        mod.add_parser(sub)  # token tasks run through the same commands (*-tokens are aliases)
    return parser


def quiet_transformers() -> None:
    """transformers' load reports and shard progress bars drown our own output."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def main(argv: Optional[Sequence[str]] = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    quiet_transformers()
    warnings.formatwarning = lambda msg, *_, **__: f"lmclassify: warning: {msg}\n"  # one line, no source echo
    # Under torchrun every rank runs this; only rank 0 speaks, the others compute the same
    # (a crash, a traceback, still shows; training/distributed.py).
    quiet = int(os.environ.get("RANK", "0")) > 0
    if quiet:
        sys.stdout = open(os.devnull, "w")
        warnings.simplefilter("ignore")
    try:
        with contextlib.redirect_stderr(sys.stdout) if quiet else contextlib.nullcontext():
            args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, or a usage error already printed in one line
        return int(e.code or 0)
    try:
        return int(args.func(args) or 0)
    except LmClassifyError as e:
        if not quiet:
            print(f"lmclassify: {'error: ' if e.exit_code == 2 else ''}{e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        if not quiet:
            print("lmclassify: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `lmclassify predict ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
