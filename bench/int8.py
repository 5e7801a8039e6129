"""What `--quantize int8` costs and gains, side by side with fp32 on the same trained model,
for every integer kernel (``models/int8_kernels.py``) and for the one ``quantize()`` picks
itself, the same choice with int8's passes around the matmul as torch ops instead of C
("torch passes": a machine without a C compiler, ``models/int8_passes.py``), and
`--quantize bf16` (fp32 where the CPU lacks native bf16): test accuracy, label agreement
with fp32 and prediction texts/s, for the default encoder (SST-2, TREC) and the default
decoder (SMS spam), each trained with its recipe.

    python bench/int8.py                          # sst2, trec, sms-spam: trains each (~15 min alone)
    python bench/int8.py --only sst2,sms-spam --reuse runs/bench-serve
    python bench/int8.py --isa avx2               # also in a child whose libraries are capped at AVX2

``--reuse DIR`` takes ``DIR/<recipe>-<model>`` when it holds a trained model. ``--isa avx2``
reruns the timing in a child process with ATen, oneDNN and FBGEMM capped at AVX2
(``ATEN_CPU_CAPABILITY``, ``ONEDNN_MAX_CPU_ISA``, ``FBGEMM_ENABLE_INSTRUCTIONS``; the C
passes and our AVX2 kernel built with ``CFLAGS=-march=haswell``): how the choice behaves
on a CPU without VNNI, emulated on this one (not a real AVX2 CPU; says so). ``auto`` there
chooses without ``int_mm``, as a real AVX2 CPU would (``_choose_as_a_real_avx2_cpu_would``).

Timing: the contenders predict the test split in turn, ``ROUNDS`` rounds; the best texts/s
of each is kept (this machine is shared and noisy).

Ceiling: what a kernel could give at best on this CPU. The fp32 model's linear layers take
a share f of its prediction time (profiled), the timing check measured the kernel's layers
(quantizing included) r times faster than fp32, so an int8 model on it that changes
nothing outside those layers cannot beat 1 / ((1 - f) + f / r) fp32 (Amdahl): the table
says which targets the CPU allows at all. Writes bench/results/int8.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import AVX2_ENV, md_table, recipe_split, run_avx2_child, write_results  # noqa: E402

# recipe -> (model, predict batch size); batch 8 on the decoder as in bench/speed.py
CASES = {"sst2": ("minilm-l6", 64), "trec": ("minilm-l6", 64), "sms-spam": ("smollm2-135m", 8)}
SEED = 123
ROUNDS = 5
# "torch passes": the auto choice with int8's passes around the matmul as torch ops, as on
# a machine without a C compiler (models/int8_passes.py): what the C passes add, side by side
CONTENDERS = ("fp32", "int_mm", "fbgemm", "avx2", "auto", "torch passes", "bf16")


def _load(model_dir: Path, contender: str):
    from lmclassify import TextClassifier

    if contender == "fp32":
        return TextClassifier.load(model_dir, device="cpu")
    if contender == "bf16":  # chosen as --quantize bf16 chooses: fp32 where the CPU lacks native bf16
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return TextClassifier.load(model_dir, device="cpu", quantize="bf16")
    env = {"LMCLASSIFY_INT8_PASSES": "torch"} if contender == "torch passes" else {"LMCLASSIFY_INT8_KERNEL": contender}
    os.environ.update(env)
    try:
        return TextClassifier.load(model_dir, device="cpu", quantize="int8")
    finally:
        for k in env:
            os.environ.pop(k, None)


def _model_dir(recipe: str, model: str, reuse: Path | None, scratch: str) -> Path:
    from lmclassify.cli import main

    if reuse and (reuse / f"{recipe}-{model}" / "model.safetensors").is_file():
        return reuse / f"{recipe}-{model}"
    out = Path(scratch, f"{recipe}-{model}")
    if main(["train", "--recipe", recipe, "--model", model, "--output", str(out), "--seed", str(SEED)]) != 0:
        raise SystemExit(f"train --recipe {recipe} failed")
    return out


def run_case(recipe: str, model_dir: Path, batch: int) -> dict:
    _, _, test = recipe_split(recipe, SEED)
    gold = [str(y) for y in test.labels]
    clfs = {c: _load(model_dir, c) for c in CONTENDERS}
    chosen = clfs["auto"].int8_kernel_
    torch_passes = clfs["torch passes"].int8_kernel_
    bf16 = clfs["bf16"].bf16_choice_
    rates: dict = {c: [] for c in CONTENDERS}
    labels: dict = {}
    for clf in clfs.values():
        clf.train_config_.eval_batch_size = batch
        clf.predict(test.texts[:batch])  # warm-up
    for _ in range(ROUNDS):
        for name, clf in clfs.items():
            t0 = time.perf_counter()
            labels[name] = [str(y) for y in clf.predict(test.texts)]
            rates[name].append(len(gold) / (time.perf_counter() - t0))
    share = matmul_share(clfs["fp32"], test.texts)
    ceiling = {k: 1 / ((1 - share) + share * v / chosen.ms["fp32"]) for k, v in chosen.ms.items()
               if k != "fp32" and chosen.ms.get("fp32")}
    acc = lambda ls: sum(a == b for a, b in zip(ls, gold)) / len(gold)  # noqa: E731
    agree = lambda ls: sum(a == b for a, b in zip(ls, labels["fp32"])) / len(gold)  # noqa: E731
    best = {c: max(r) for c, r in rates.items()}
    return {"recipe": recipe, "model_dir": str(model_dir), "batch_size": batch, "n_test": len(gold),
            "auto_kernel": chosen.kernel or "fp32", "auto_choice": chosen.describe(),
            "torch_passes_kernel": torch_passes.kernel or "fp32", "torch_passes_choice": torch_passes.describe(),
            "bf16_ran": clfs["bf16"].quantized_ == "bf16", "bf16_choice": bf16.describe(),
            "accuracy": {c: acc(labels[c]) for c in CONTENDERS},
            "label_agreement": {c: agree(labels[c]) for c in CONTENDERS},
            "texts_per_second": best, "over_fp32": {c: best[c] / best["fp32"] for c in CONTENDERS},
            "all_rates": rates, "fp32_linear_share": share, "ceiling_over_fp32": ceiling}


def matmul_share(clf, texts: list[str]) -> float:
    """The share of an fp32 prediction's CPU time spent in its linear layers' matmuls."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        clf.predict(texts)
    times = {e.key: e.self_cpu_time_total for e in prof.key_averages()}
    return sum(times.get(k, 0.0) for k in ("aten::addmm", "aten::mm")) / sum(times.values())


def run_cases(names: list[str], reuse: Path | None) -> list[dict]:
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            model, batch = CASES[name]
            print(f"... {name}", flush=True)
            results.append(run_case(name, _model_dir(name, model, reuse, scratch), batch))
            print(f"    {json.dumps(results[-1])}", flush=True)
    return results


def _rows(results: list[dict], isa: str) -> list[list]:
    rows = []
    for r in results:
        for c in CONTENDERS:
            name = {"auto": f"auto -> {r['auto_kernel']}",
                    "torch passes": f"auto, torch passes -> {r.get('torch_passes_kernel', '?')}",
                    "bf16": "--quantize bf16" + ("" if r.get("bf16_ran", True) else " -> fp32")}.get(c, c)
            rows.append([isa, r["recipe"], name, r["n_test"],
                         f"{100 * r['accuracy'][c]:.2f}", f"{100 * r['label_agreement'][c]:.1f}",
                         round(r["texts_per_second"][c], 1), round(r["over_fp32"][c], 2)])
    return rows


def _choose_as_a_real_avx2_cpu_would() -> None:
    """torch gates ``_int_mm``'s fast path on AVX-512 VNNI, which no library cap hides: capped
    here it still runs oneDNN's AVX2 int8, while a real AVX2-only CPU falls to a slow path
    (139 ms vs 3.45 ms fp32 in issue 14) that the timing check never picks. So in the emulated
    child ``auto`` chooses without it; the forced ``int_mm`` row still shows oneDNN's AVX2."""
    from lmclassify.models import int8_kernels

    choose = int8_kernels.choose

    def without_int_mm(shapes, kernels, env, *rest):
        if (os.environ.get(env, "auto").strip().lower() or "auto") == "auto":  # forcing int_mm still may
            kernels = {k: v for k, v in kernels.items() if k != "int_mm"}
        return choose(shapes, kernels, env, *rest)

    int8_kernels.choose = without_int_mm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help=f"comma list of recipes ({','.join(CASES)})")
    ap.add_argument("--reuse", type=Path, help="a folder of trained models named <recipe>-<model>")
    ap.add_argument("--isa", choices=("native", "avx2"), default="native",
                    help="avx2: also time in a child with the libraries capped at AVX2")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--output", type=Path)
    a = ap.parse_args()
    names = a.only.split(",") if a.only else list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise SystemExit(f"unknown recipe(s): {', '.join(unknown)}; choose from {', '.join(CASES)}")
    if a.child:
        if os.environ.get("ATEN_CPU_CAPABILITY") == "avx2":
            _choose_as_a_real_avx2_cpu_would()
        print(json.dumps(run_cases(names, a.reuse)))
        return
    out = {"seed": SEED, "native": run_cases(names, a.reuse)}
    rows = _rows(out["native"], "native")
    if a.isa == "avx2":
        args = ["--child", "--only", ",".join(names)] + (["--reuse", str(a.reuse)] if a.reuse else [])
        out["avx2_emulated"] = run_avx2_child(Path(__file__), args)
        out["avx2_emulated_env"] = AVX2_ENV
        rows += _rows(out["avx2_emulated"], "AVX2 (emulated)")
    kernels = "; ".join(f"{r['recipe']}: {r['auto_choice']}" for r in out["native"])
    table = ("## int8 kernels vs fp32 prediction, same trained model\n\n"
             f"`quantize()` chose, natively: {kernels}\n\n"
             + md_table(["CPU", "recipe", "contender", "test texts", "acc %", "labels agree with fp32 %",
                         "texts/s", "x fp32"], rows))
    ceilings = []
    for isa, label in (("native", "native"), ("avx2_emulated", "AVX2 (emulated)")):
        for r in out.get(isa, []):
            timed = r["ceiling_over_fp32"]
            ceilings.append([label, r["recipe"], f"{100 * r['fp32_linear_share']:.0f}",
                             ", ".join(f"{k} {v:.2f}x" for k, v in timed.items()) or "(not timed: cached or forced)",
                             round(r["over_fp32"]["auto"], 2)])
    table += ("\n\n## The most a kernel could give here (Amdahl)\n\n"
              "fp32 linear share: the fp32 model's prediction time in its linear layers' matmuls (profiled); "
              "ceiling: 1 / ((1 - share) + share / r), r the kernel's timed speed-up over fp32 on those layers "
              "(the timing check above, quantizing included), i.e. the most int8 layers that fast can give "
              "while everything outside them stays as it is.\n\n"
              + md_table(["CPU", "recipe", "fp32 linear share %", "ceiling per kernel (x fp32)",
                          "auto measured (x fp32)"], ceilings))
    if "avx2_emulated" in out:
        table += ("\n\nAVX2 (emulated): the same CPU with ATen, oneDNN and FBGEMM capped at AVX2 through "
                  f"{', '.join(f'{k}={v}' for k, v in AVX2_ENV.items())}; a real AVX2-only CPU may differ. "
                  "There `auto` chooses without `int_mm`: torch runs its fast path only where the CPU reports "
                  "AVX-512 VNNI, which the caps cannot hide (the forced `int_mm` row is oneDNN's AVX2 int8, "
                  "which a real AVX2 CPU does not reach: 139 ms vs 3.45 ms fp32 in issue 14).")
    path = write_results("int8", out, table, a.output)
    print(table)
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
