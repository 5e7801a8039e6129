"""What checkpointing costs and how fast a killed run is back, on the SMS spam recipe
(smollm2-135m, 5 epochs): the seconds spent writing checkpoints against the training
time in the same run (target <= 5 %), a checkpoint's size, and the seconds from starting
`lmclassify train --resume` after a SIGKILL to the first new optimizer step.

    python bench/resume.py

Writes bench/results/resume.json and resume.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, md_table, run_child, write_results  # noqa: E402

KILL_AT_STEP = 200  # in the second epoch (131 steps an epoch)


def child_overhead(_: int) -> dict:
    """The recipe in this process, with every checkpoint write timed."""
    import lmclassify
    from lmclassify.training import checkpoint

    spent, sizes = [], []
    save = checkpoint.Checkpoints.save

    def timed(self, *args, **kw):
        t0 = time.perf_counter()
        save(self, *args, **kw)
        spent.append(time.perf_counter() - t0)
        sizes.append(sum(f.stat().st_size for f in self.path.iterdir()))

    checkpoint.Checkpoints.save = timed
    with tempfile.TemporaryDirectory() as d:
        cfg = lmclassify.RunConfig(data=lmclassify.DataConfig(recipe="sms-spam"))
        m = lmclassify.train(cfg, Path(d) / "m", progress=False)["metrics"]
    return {"train_seconds": m["train_seconds"], "steps": m["steps"], "checkpoints": len(spent),
            "checkpoint_seconds": sum(spent), "checkpoint_mb": max(sizes) / 2**20,
            "overhead": sum(spent) / m["train_seconds"], "test_accuracy": m["test"]["accuracy"]}


def child_resume(_: int) -> dict:
    """Kill a run at step KILL_AT_STEP, then time its resume until the next checkpoint
    (one a step with --save-every 1) appears."""
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "m"
        cmd = [sys.executable, "-m", "lmclassify", "train", "--recipe", "sms-spam", "--save-every", "1",
               "--output", str(out)]
        p = subprocess.run(cmd, env={**os.environ, "LMCLASSIFY_DIE_AT": f"step:{KILL_AT_STEP}"},
                           capture_output=True, text=True)
        assert p.returncode == -9, p.stderr[-2000:]
        state = out.with_name("m.partial") / "checkpoint" / "state.json"
        before = json.loads(state.read_text())["steps"]
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "lmclassify", "train", "--resume", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        back = None
        while proc.poll() is None:
            try:
                if json.loads(state.read_text())["steps"] > before:
                    back = time.perf_counter() - t0
                    break
            except (OSError, ValueError):
                pass  # between the rename of the old and the new checkpoint
            time.sleep(0.05)
        proc.wait()
        assert proc.returncode == 0 and back is not None
    return {"killed_at_step": before, "seconds_to_first_resumed_step": back}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output", type=Path)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(globals()[f"child_{a.child}"](0)))
        return
    over = run_child(Path(__file__), ["--child", "overhead"], 3600)
    res = run_child(Path(__file__), ["--child", "resume"], 3600)
    out = {"recipe": "sms-spam", "model": "smollm2-135m", "machine": machine(), "overhead": over, "resume": res,
           "target_overhead": 0.05, "meets_target": over["overhead"] <= 0.05}
    table = ("## Checkpoints and resume, SMS spam recipe (smollm2-135m, 5 epochs)\n\n"
             f"Machine: {out['machine']['summary']}\n\n"
             + md_table(["figure", "value"], [
                 ["training seconds", round(over["train_seconds"], 1)],
                 ["checkpoints written (one per evaluation)", over["checkpoints"]],
                 ["seconds writing them", round(over["checkpoint_seconds"], 2)],
                 ["overhead (of training time)", f"{100 * over['overhead']:.2f} % (target <= 5 %)"],
                 ["checkpoint size MB", round(over["checkpoint_mb"], 1)],
                 ["test accuracy", round(over["test_accuracy"], 4)],
                 [f"SIGKILL at step {res['killed_at_step']}: seconds from `--resume` to the next step",
                  round(res["seconds_to_first_resumed_step"], 1)]]))
    path = write_results("resume", out, table, a.output)
    print(table)
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
