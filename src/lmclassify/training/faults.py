"""Crash points for the resume tests: a run can be told to kill itself (SIGKILL, no
clean-up, as the OOM killer would) when it reaches a named point, so the tests can check
that a resumed run ends exactly where an uninterrupted one does.

``LMCLASSIFY_DIE_AT=point[:n[:INT]]`` kills the process the n-th time (default 1st) it
reaches ``point`` (``INT``: sends it Ctrl-C's SIGINT instead). Points: ``feature-cache`` (features half built), ``step`` (after an optimizer
step), ``checkpoint-write`` (half a checkpoint written), ``final-save`` (model directory
half written). Unset, this costs one dictionary lookup.
"""
from __future__ import annotations

import os
import signal

_seen: dict[str, int] = {}


def maybe_die(point: str) -> None:
    spec = os.environ.get("LMCLASSIFY_DIE_AT")
    if not spec:
        return
    name, _, rest = spec.partition(":")
    if name != point:
        return
    nth, _, how = rest.partition(":")
    _seen[point] = _seen.get(point, 0) + 1
    if _seen[point] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGINT if how == "INT" else signal.SIGKILL)
