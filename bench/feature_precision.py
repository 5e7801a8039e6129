"""Does an int8 (or bf16) feature cache cost accuracy? The default decoder trained side by
side with its frozen prefix's cached states computed in fp32 and in int8 (`--feature-precision`;
`--precisions fp32,int8,bf16` adds bf16 where the CPU does it natively, `auto` what the default
picks on this CPU),
same recipe, same seed, on the two recipes issue 14 names: SMS spam and SST-2. Validation
and test always run the fp32 prefix (the saved model), so test accuracy is comparable.

    python bench/feature_precision.py                       # sms-spam + sst2 (~25 min on 2 cores)
    python bench/feature_precision.py --only sms-spam --seeds 123,1
    python bench/feature_precision.py --only sst2 --seeds 1,2 --update   # add runs to the JSON's
    python bench/feature_precision.py --render --note "..."   # the table again from the JSON

Each run is the real CLI in its own process (bench/tasks.py's child). Writes
bench/results/feature_precision.json and feature_precision.md; the int8 cache may become
the default only where test accuracy stays within 0.3 points of fp32. Training speed is
bench/speed.py's to measure (alone, side by side); the seconds here are only indicative.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, md_table, write_results  # noqa: E402
from tasks import DECODER, DECODER_OPTIONS, _run  # noqa: E402

RECIPES = ("sms-spam", "sst2")
TOLERANCE = 0.003  # test accuracy int8 may lose and still be the default


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated recipes (default: sms-spam,sst2)")
    ap.add_argument("--seeds", default="123", help="comma-separated seeds, each run in every precision")
    ap.add_argument("--precisions", default="fp32,int8", help="comma-separated cache precisions (fp32 first: "
                                                             "the reference; bf16 where the CPU does it natively)")
    ap.add_argument("--output", type=Path)
    ap.add_argument("--render", action="store_true", help="rewrite the Markdown from the JSON, run nothing")
    ap.add_argument("--update", action="store_true", help="keep the JSON's runs (and notes) and add these")
    ap.add_argument("--note", action="append", default=[], help="a line to keep under the table")
    a = ap.parse_args()
    previous = json.loads((a.output or RESULTS / "feature_precision.json").read_text()) \
        if a.render or a.update else {}
    if a.render:
        previous.pop("machine", None)  # write_results adds the machine again
        previous["notes"] = previous.get("notes", []) + a.note
        previous["summary"] = _summary(previous["runs"])
        return _write(previous, a.output)
    t0 = time.perf_counter()
    runs = list(previous.get("runs", []))
    for recipe in (a.only.split(",") if a.only else RECIPES):
        for seed in a.seeds.split(","):
            for precision in a.precisions.split(","):  # alternating, so load drifts touch all
                extra = [*DECODER_OPTIONS.get(recipe, []), "--seed", seed, "--feature-precision", precision]
                r = _run(recipe, DECODER, extra)
                runs.append({"recipe": recipe, "seed": int(seed), "precision": precision, **r})
    summary = _summary(runs)
    out = {"model": DECODER, "tolerance_points": 100 * TOLERANCE, "runs": runs, "summary": summary,
           "total_wall_seconds": round(time.perf_counter() - t0 + previous.get("total_wall_seconds", 0), 1),
           "notes": previous.get("notes", []) + a.note}
    _write(out, a.output)


def _summary(runs: list[dict]) -> list[dict]:
    """Each precision against fp32 over the seeds both ran (a paired comparison: seeds move
    test accuracy more than the precision does)."""
    summary = []
    for recipe in dict.fromkeys(r["recipe"] for r in runs):
        mine = [r for r in runs if r["recipe"] == recipe]
        acc = {p: {r["seed"]: r["splits"]["test"]["accuracy"] for r in mine if r["precision"] == p}
               for p in dict.fromkeys(r["precision"] for r in mine)}
        for p in (p for p in acc if p != "fp32"):
            seeds = sorted(set(acc[p]) & set(acc.get("fp32", {})))
            if not seeds:
                continue
            ref, its = (statistics.mean(acc[q][s] for s in seeds) for q in ("fp32", p))
            summary.append({"recipe": recipe, "precision": p, "seeds": len(seeds), "fp32_test_accuracy": ref,
                            "test_accuracy": its, "delta_points": round(100 * (its - ref), 2),
                            "within_tolerance": its - ref >= -TOLERANCE,
                            "train_seconds": {q: round(sum(r["train_seconds"] for r in mine
                                                           if r["precision"] == q and r["seed"] in seeds), 1)
                                              for q in ("fp32", p)}})
    return summary


def _write(out: dict, output: Path | None) -> None:
    runs, summary = out["runs"], out["summary"]
    rows = [[r["recipe"], r["seed"], r["precision"] if r["precision"] != "auto" else
             f"auto (ran {r['precisions_ran']['feature_precision']})",
             f"{100 * r['splits']['test']['accuracy']:.2f}",
             f"{100 * r['splits']['validation']['accuracy']:.2f}", r["epochs"], r["train_seconds"], r["wall_seconds"]]
            for r in runs]
    table = (f"## Feature cache in fp32 vs int8 (and bf16), {DECODER} (last block trained), side by side\n\n"
             + md_table(["recipe", "seed", "cache", "test acc %", "validation acc %", "epochs", "train s", "wall s"],
                        rows)
             + "\n\n" + md_table(["recipe", "cache", "seeds", "fp32 test %", "its test %", "minus fp32 (points)",
                                  f"within {100 * TOLERANCE:.1f} points"],
                                 [[s["recipe"], s.get("precision", "int8"), s["seeds"],
                                   f"{100 * s['fp32_test_accuracy']:.2f}",
                                   f"{100 * s.get('test_accuracy', s.get('int8_test_accuracy')):.2f}",
                                   s["delta_points"], "yes" if s["within_tolerance"] else "NO"] for s in summary])
             + "\n\nValidation and test run the fp32 prefix either way; only the training split's cached states "
               "differ. SST-2: the 6,920 stsa train sentences, --max-length 64; SMS spam: the recipe's split "
               "and options. Train seconds are indicative only (bench/speed.py measures speed)."
             + "".join(f"\n\n{n}" for n in out.get("notes", [])))
    path = write_results("feature_precision", out, table, output)
    print(table)
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
