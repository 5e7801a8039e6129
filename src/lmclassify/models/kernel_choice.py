"""Which way of running a model's linear layers is fastest on this CPU: decided once per
machine by a short timing on the model's own layer shapes, cached, and never slower than
fp32. ``models/int8_kernels.py`` asks it about the integer kernels, ``models/bf16.py``
about bf16; each kernel is a class built from a weight whose ``layer(x)`` does one layer's
work as the model would.

A choice is forced by an environment variable (auto, fp32 or a kernel's name), else read
from ``int8_kernels.json`` in the lmclassify cache (keyed by the CPU, torch version, thread
count and shapes), else timed. A candidate must beat fp32 by ``MIN_GAIN`` to be chosen.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from ..errors import LmClassifyError
from ..machine import machine_info
from ..paths import cache_root

# A kernel must beat fp32 on the layer matmuls by this much to be worth its rounding
# error: attention, norms and quantising activations do not shrink with it.
MIN_GAIN = 1.15
TIMING_ROWS = 256  # tokens per matmul in the timing check: a typical inference batch
CACHE_FILE = "int8_kernels.json"  # its first tenant's name; bf16 choices share it


@dataclass
class KernelChoice:
    """The kernel layers use on this machine (None: stay fp32), and why."""

    kernel: Optional[str]
    source: str  # "env", "cache" or "timed"
    ms: dict = field(default_factory=dict)  # per kernel and fp32: matmul time of the model's layers
    cpu: str = ""
    how: str = ""  # what else decides the speed, e.g. which passes surround int8's matmul

    def describe(self) -> str:
        times = ", ".join(f"{k} {v:.2f} ms" for k, v in self.ms.items())
        what = (("bf16" if self.kernel == "bf16" else f"int8 kernel {self.kernel}") if self.kernel
                else "fp32 (nothing beats it)")
        how = f" with {self.how}" if self.kernel and self.how else ""
        return f"{what}{how} on {self.cpu}" + (f" [{times}]" if times else "") + f" ({self.source})"


def time_kernels(shapes: dict[tuple[int, int], int], kernels: dict[str, type], rows: int = TIMING_ROWS,
                 reps: int = 5, rounds: int = 3) -> dict[str, float]:
    """Milliseconds for one forward of every layer shape (weighted by how many layers have
    it) in fp32 and in each available one of ``kernels``, on random data of the same size.
    Each candidate runs a few calls in a row (as a model does: switching libraries between
    calls costs their thread pools a wake-up each time, 10-50x on small matmuls), and the
    candidates take turns over several rounds keeping their best, so a burst of load on a
    shared machine lands on all of them instead of deciding the race."""
    gen = torch.Generator().manual_seed(0)
    names = ["fp32", *(k for k, cls in kernels.items() if cls.available())]
    totals = dict.fromkeys(names, 0.0)
    for (n_in, n_out), count in shapes.items():
        w = torch.randn(n_out, n_in, generator=gen)
        x = torch.randn(rows, n_in, generator=gen)
        runs = {"fp32": lambda: torch.nn.functional.linear(x, w)}
        for name in names[1:]:
            try:
                run = (lambda k: lambda: k.layer(x))(kernels[name](w))
                run()  # warm-up; may raise
                runs[name] = run
            except Exception:  # a kernel this build or CPU cannot run is simply not a candidate
                totals.pop(name, None)
                continue
        best = dict.fromkeys(runs, float("inf"))
        for _ in range(rounds):
            for name, fn in runs.items():
                for _ in range(2):  # back on this kernel's own code path and thread pool
                    fn()
                for _ in range(reps):
                    t0 = time.perf_counter()
                    fn()
                    best[name] = min(best[name], time.perf_counter() - t0)
        for name in best:
            if name in totals:
                totals[name] += count * best[name] * 1e3
    return totals


def _machine_is_busy() -> bool:
    """More runnable work than cores: timings now say more about the neighbours than the
    kernels, so a choice made now is used but not cached."""
    try:
        return os.getloadavg()[0] > (os.cpu_count() or 1)
    except OSError:
        return False


def _read_cache() -> dict:
    try:
        return json.loads((cache_root() / CACHE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(cache: dict) -> None:
    path = cache_root() / CACHE_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=1) + "\n")
        os.replace(tmp, path)
    except OSError:  # a read-only cache only costs the timing next time
        pass


def choose(shapes: dict[tuple[int, int], int], kernels: dict[str, type], env: str, family: str,
           by_flags: Callable[[list[str]], Optional[str]]) -> KernelChoice:
    """The fastest of ``kernels`` against fp32, or None: forced by ``$env``, else from the
    per-machine cache (keyed by ``family``, the CPU and the shapes), else timed (by the
    CPU's flags, ``by_flags``, when the machine is too busy to time)."""
    info = machine_info()
    forced = os.environ.get(env, "auto").strip().lower() or "auto"
    if forced not in ("auto", "fp32", *kernels):
        raise LmClassifyError(f"${env} must be auto, fp32, {' or '.join(kernels)}, not {forced!r}")
    if forced == "fp32":
        return KernelChoice(None, "env", cpu=info["summary"])
    if forced != "auto":
        if not kernels[forced].available():
            raise LmClassifyError(f"${env}={forced}: this machine cannot run that kernel "
                                  f"(torch {torch.__version__})")
        return KernelChoice(forced, "env", cpu=info["summary"])
    # the candidates are part of the key: a kernel added since the last timing gets its turn
    key = f"{family}{info['summary']} | {'/'.join(kernels)} | " + \
        ",".join(f"{i}x{o}*{n}" for (i, o), n in sorted(shapes.items()))
    cache = _read_cache()
    if key in cache:
        c = cache[key]
        if c.get("kernel") is None or (c["kernel"] in kernels and kernels[c["kernel"]].available()):
            return KernelChoice(c.get("kernel"), "cache", c.get("ms", {}), info["summary"])
    if _machine_is_busy():
        # Timings on an oversubscribed CPU measure the neighbours (thread pools descheduled
        # mid-matmul): go by what the CPU reports, and time it another day.
        return KernelChoice(by_flags(info["flags"]), "CPU flags; machine busy, not timed", cpu=info["summary"])
    ms = time_kernels(shapes, kernels)
    contenders = {k: v for k, v in ms.items() if k != "fp32"}
    best = min(contenders, key=contenders.get) if contenders else None
    kernel = best if best is not None and ms["fp32"] >= MIN_GAIN * contenders[best] else None
    cache[key] = {"kernel": kernel, "ms": {k: round(v, 3) for k, v in ms.items()}}
    _write_cache(cache)
    return KernelChoice(kernel, "timed", cache[key]["ms"], info["summary"])
