"""Helpers shared by the benchmarks: the recipe split, peak memory, result files."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
os.environ.setdefault("LMCLASSIFY_DATA", str(REPO.parent / "shared" / "data"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def recipe_split(recipe: str, seed: int = 123):
    """(train, validation, test) Examples exactly as ``lmclassify train --recipe`` reads them."""
    from lmclassify.config import DataConfig, RunConfig, TrainConfig
    from lmclassify.jobs.train import load_splits, resolve, wants_tokens

    cfg = resolve(RunConfig(data=DataConfig(recipe=recipe), train=TrainConfig(seed=seed)))
    return load_splits(cfg.data, seed, wants_tokens(cfg))


def spam_split(seed: int = 123):
    """The recipe's split: balanced 747/747, 70/10/20 -> 1045/149/300."""
    return recipe_split("sms-spam", seed)


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(script: Path, args: list[str], timeout: Optional[float] = None, env: Optional[dict] = None):
    """Run one contender in its own process (its own peak RSS); it prints one JSON line last,
    returned (a dict gets the child's ``wall_seconds``)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout,
                          env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{Path(script).name} {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if isinstance(out, dict):
        out["wall_seconds"] = round(time.perf_counter() - t0, 2)
    return out


# This CPU with ATen, oneDNN and FBGEMM capped at AVX2 and lmclassify's C code built for
# Haswell: how a CPU without VNNI behaves, emulated (not a real AVX2-only CPU)
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "FBGEMM_ENABLE_INSTRUCTIONS": "AVX2",
            "CFLAGS": "-march=haswell"}


def run_avx2_child(script: Path, args: list[str]):
    """``run_child`` under ``AVX2_ENV``, with a fresh lmclassify cache (its own kernel choice)."""
    return run_child(script, args, env={**os.environ, **AVX2_ENV, "LMCLASSIFY_CACHE": tempfile.mkdtemp()})


def write_results(name: str, data: dict, table: str, output: Path | None = None) -> Path:
    """JSON + Markdown; both carry the machine (CPU, vector extensions, torch, threads), so
    results from different CPUs are never compared silently."""
    data = {"machine": machine(), **data}
    if "Machine:" not in table:
        table = f"Machine: {data['machine']['summary']}\n\n{table}"
    path = Path(output) if output else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    path.with_suffix(".md").write_text(table + "\n")
    return path


def md_table(headers: list[str], rows: list[list]) -> str:
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def machine() -> dict:
    """The machine a result was measured on (``lmclassify.machine``): CPU model, vector
    extensions, torch version and threads."""
    from lmclassify.machine import machine_info

    return machine_info()
