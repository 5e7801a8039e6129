"""The int8 matmuls alone and as whole layers, against fp32, on the default models' layer
shapes: what ``models/int8_gemm.c`` (the ``avx2`` kernel) adds on a CPU without VNNI.

    python bench/int8_gemm.py              # natively, then in a child capped at AVX2

"matmul": the integer product alone on ready int8 rows (``torch._int_mm``; our gemm to
int32; FBGEMM's dynamic linear, which quantizes its fp32 input itself, so it is a whole
layer in both columns). "layer": what ``Int8Linear`` runs per layer, quantizing and
finishing included (``kernel_choice.time_kernels``, the timing check itself). Rows: a
typical timing-check batch (256) and a prediction batch of short texts (1,600). The AVX2
child caps ATen, oneDNN and FBGEMM at AVX2 and builds the C code with ``-march=haswell``
(as ``bench/int8.py --isa avx2``); ``torch._int_mm`` there is oneDNN's AVX2 path, which a
real AVX2-only CPU does not get (torch gates it on AVX-512 VNNI). Best of several rounds
taken in turn. Writes bench/results/int8_gemm.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import AVX2_ENV, md_table, run_avx2_child, write_results  # noqa: E402

# (model, shapes (in, out) with their layer counts): MiniLM-L6 and SmolLM2-135M
MODELS = {"minilm-l6": {(384, 384): 24, (384, 1536): 6, (1536, 384): 6},
          "smollm2-135m": {(576, 576): 60, (576, 192): 60, (576, 1536): 60, (1536, 576): 30}}
ROWS = (256, 1600)


def _best(fn, reps: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def matmul_ms(shapes: dict, rows: int, rounds: int = 3) -> dict[str, float]:
    """ms for one forward of every shape (times its count), integer product only."""
    import torch

    from lmclassify.models import int8_passes
    from lmclassify.models.int8_kernels import Avx2Gemm, Fbgemm, IntMM

    gen = torch.Generator().manual_seed(0)
    passes = int8_passes.passes()
    totals: dict[str, float] = {}
    for (n_in, n_out), count in shapes.items():
        x = torch.randn(rows, n_in, generator=gen)
        w = torch.randn(n_out, n_in, generator=gen)
        q = torch.randint(-63, 64, (rows, n_in), dtype=torch.int8, generator=gen)
        runs = {"fp32": lambda: torch.nn.functional.linear(x, w)}
        if IntMM.available():
            qw = torch.randint(-127, 128, (n_in, n_out), dtype=torch.int8, generator=gen)
            runs["int_mm"] = lambda: torch._int_mm(q, qw)
        if Fbgemm.available():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fb = Fbgemm(w)
            runs["fbgemm (quantizes too)"] = lambda: torch.ops.quantized.linear_dynamic(x, fb.packed, False)
        if Avx2Gemm.available():
            a, packed = q + 64, passes.gemm_pack(torch.randint(-63, 64, (n_out, n_in), dtype=torch.int8,
                                                               generator=gen))
            runs["avx2"] = lambda: passes.gemm(a, packed, n_out)
        best = dict.fromkeys(runs, float("inf"))
        for _ in range(rounds):
            for name, fn in runs.items():
                best[name] = min(best[name], _best(fn))
        for name, ms in best.items():
            totals[name] = totals.get(name, 0.0) + count * ms
    return totals


def measure() -> list[dict]:
    from lmclassify.machine import machine_info
    from lmclassify.models import int8_passes, kernel_choice
    from lmclassify.models.int8_kernels import BY_NAME

    out = []
    for model, shapes in MODELS.items():
        for rows in ROWS:
            out.append({"model": model, "rows": rows, "matmul_ms": matmul_ms(shapes, rows),
                        "layer_ms": kernel_choice.time_kernels(shapes, BY_NAME, rows=rows),
                        "passes": int8_passes.status(), "cpu_capability": machine_info()["cpu_capability"]})
    return out


def _rows(results: list[dict], label: str) -> list[list]:
    rows = []
    for r in results:
        for what in ("matmul_ms", "layer_ms"):
            ms = r[what]
            rows.append([label, r["model"], r["rows"], what.split("_")[0],
                         ", ".join(f"{k} {v:.1f}" for k, v in ms.items()),
                         ", ".join(f"{k} {ms['fp32'] / v:.2f}x" for k, v in ms.items() if k != "fp32")])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--output", type=Path)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(measure()))
        return
    out = {"native": measure(), "avx2_emulated": run_avx2_child(Path(__file__), ["--child"])}
    out["avx2_emulated_env"] = AVX2_ENV
    table = ("## int8 matmuls and layers vs fp32, the default models' layer shapes (ms per forward of all layers)\n\n"
             + md_table(["CPU", "model", "rows", "what", "ms", "x fp32"],
                        _rows(out["native"], "native") + _rows(out["avx2_emulated"], "AVX2 (emulated)"))
             + "\n\nmatmul: the integer product on ready int8 rows (FBGEMM's dynamic linear quantizes its fp32 "
               "input itself); layer: quantizing, matmul and finishing, as the timing check runs them. "
               "AVX2 (emulated): " + ", ".join(f"{k}={v}" for k, v in AVX2_ENV.items())
             + "; its int_mm is oneDNN's AVX2 path, which a real AVX2-only CPU does not reach.")
    path = write_results("int8_gemm", out, table, a.output)
    print(table)
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
