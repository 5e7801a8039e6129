"""1 process vs `torchrun --nproc-per-node 2` (gloo, CPU) on the same run: MiniLM (every
block trained) on an SST-2 subset, one thread per process, side by side.

  OMP_NUM_THREADS=1 .venv/bin/python bench/distributed.py [--train 1600 --test 400 --epochs 1]

Writes bench/results/distributed.{json,md}: training seconds (metrics.json: encoding, feature cache, loop),
wall seconds (process start to exit, imports included), test accuracy, and how far the two
runs' weights are apart (relative, per tensor) (MiniLM has dropout, drawn per rank, so they are not equal).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import md_table, write_results  # noqa: E402

SST2 = Path(os.environ["LMCLASSIFY_DATA"]) / "sst2"


def _rows(name: str, n: int) -> list[tuple[str, str]]:
    out = []
    for line in (SST2 / name).read_text(encoding="utf-8").splitlines():
        label, _, text = line.partition(" ")
        if text:
            out.append((text, "positive" if label == "1" else "negative"))
    return out[:n]


def _csv(rows, path: Path) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return path


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(launcher: list[str], args: list[str], out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    p = subprocess.run(launcher + args + ["--output", str(out)], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if p.returncode:
        raise RuntimeError(p.stderr[-3000:])
    m = json.loads((out / "metrics.json").read_text())
    return {"train_seconds": m["train_seconds"], "wall_seconds": round(wall, 2), "steps": m["steps"],
            "test_accuracy": m["test"]["accuracy"], "validation_accuracy": m["validation"]["accuracy"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=1600)
    ap.add_argument("--test", type=int, default=400)
    ap.add_argument("--epochs", type=int, default=1)
    a = ap.parse_args()
    from safetensors.torch import load_file

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        args = ["train", "--train", str(_csv(_rows("stsa.binary.train", a.train), d / "train.csv")),
                "--validation", str(_csv(_rows("stsa.binary.dev", 200), d / "dev.csv")),
                "--test", str(_csv(_rows("stsa.binary.test", a.test), d / "test.csv")),
                "--model", "minilm-l6", "--epochs", str(a.epochs), "--batch-size", "32", "--seed", "123"]
        one = _run([sys.executable, "-m", "lmclassify"], args, d / "one")
        two = _run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr",
                    "127.0.0.1", "--master-port", str(_port()), "-m", "lmclassify"], args, d / "two")
        w1, w2 = load_file(str(d / "one" / "model.safetensors")), load_file(str(d / "two" / "model.safetensors"))
        # relative: an encoder's linear head is saved folded into transformers' layout (scaled by 1/eps)
        rel = sorted((float((w1[k] - w2[k]).norm() / w1[k].norm().clamp_min(1e-12)), k) for k in w1)
    diff = {"median": round(rel[len(rel) // 2][0], 5), "max": round(rel[-1][0], 5), "max_tensor": rel[-1][1]}
    runs = {"1 process": one, "torchrun, 2 processes (gloo)": two}
    rows = [[name, r["steps"], r["train_seconds"], r["wall_seconds"], round(100 * r["validation_accuracy"], 2),
             round(100 * r["test_accuracy"], 2)] for name, r in runs.items()]
    speedup = one["train_seconds"] / two["train_seconds"]
    table = (f"MiniLM-L6 (every block trained, batch 32 global), SST-2: {a.train} training texts, 200 "
             f"validation, {a.test} test, {a.epochs} epoch(s); one thread per process, the two runs one after "
             f"the other on a machine other jobs were using (times are noisy; only the ratio is quoted).\n\n"
             + md_table(["run", "steps", "train s", "wall s", "val acc %", "test acc %"], rows)
             + f"\n\nTraining-loop speed-up, 2 processes vs 1: {speedup:.2f}x. Relative weight difference between "
             f"the runs (|a-b|/|a| per tensor): median {diff['median']:.3g}, largest {diff['max']:.3g} "
             f"({diff['max_tensor']}) (dropout masks are drawn per rank; without dropout the weights agree to "
             f"rounding, `tests/test_distributed.py`).")
    path = write_results("distributed", {"runs": runs, "train_speedup": round(speedup, 3), "max_weight_diff": diff,
                                         "config": vars(a)}, table)
    print(path.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
