"""Helpers shared by the benchmarks: the recipe split, peak memory, result files."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

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


def run_child(script: Path, args: list[str], timeout: float) -> dict:
    """Run one contender in its own process (its own peak RSS); it prints one JSON line last."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{script.name} {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_seconds"] = round(time.perf_counter() - t0, 2)
    return out


def write_results(name: str, data: dict, table: str, output: Path | None = None) -> Path:
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
    """The machine a result was measured on, so numbers from different CPUs are never
    compared silently: CPU model, vector extensions, torch version and threads."""
    import platform

    import torch

    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("unknown", "x86_64", ""):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    wanted = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")
              if f in flags]
    cap = torch.backends.cpu.get_cpu_capability()
    return {"cpu": model, "cpu_capability": cap, "flags": wanted, "cores": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "summary": f"{model}, {cap} ({', '.join(wanted) or 'no AVX2'}), {os.cpu_count()} cores, "
                       f"torch {torch.__version__} on {torch.get_num_threads()} threads"}
