"""Checkpoints and exact resume: a real `lmclassify train` process is killed (SIGKILL, as
the OOM killer would) at several points, or stopped with Ctrl-C, and resumed; the result
must equal an uninterrupted run's bit for bit (weights) and metrics apart from timings."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_cli import _sms_csv

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "LMCLASSIFY_DIE_AT": ""}  # one thread: identical kernels every run


def _run(args: list, die_at: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lmclassify", *map(str, args)], capture_output=True, text=True,
                          env={**ENV, "LMCLASSIFY_DIE_AT": die_at}, timeout=300)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_llama_dir, sms_file):
    d = tmp_path_factory.mktemp("resume")
    data = _sms_csv(sms_file, d / "sms.csv", n=96)
    # 67 training texts, batch 8: 9 steps an epoch, 27 in all; a checkpoint every 2 steps and
    # at every evaluation; dropout on, so the torch generator matters too
    args = ["train", "--data", data, "--model", tiny_llama_dir, "--epochs", "3", "--batch-size", "8",
            "--learning-rate", "1e-3", "--seed", "7", "--train-layers", "2", "--save-every", "2"]
    ref = d / "ref"
    p = _run(args + ["--output", ref])
    assert p.returncode == 0, p.stderr
    return d, args, ref, sms_file


def _same_result(a: Path, b: Path) -> None:
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    ma, mb = (json.loads((x / "metrics.json").read_text()) for x in (a, b))
    ma.pop("train_seconds"), mb.pop("train_seconds")
    assert ma == mb
    assert (a / "metrics.jsonl").read_text() == (b / "metrics.jsonl").read_text()


@pytest.mark.parametrize("point", ["feature-cache", "step:5", "step:13", "checkpoint-write:3", "final-save"])
def test_killed_run_resumes_to_the_same_result(setup, tmp_path, point):
    d, args, ref, sms_file = setup
    out = tmp_path / "m"
    p = _run(args + ["--output", out], die_at=point)
    assert p.returncode == -9, p.stderr  # killed, no clean-up
    partial = tmp_path / "m.partial"
    assert partial.is_dir() and not out.exists()
    if point.startswith("step:1"):
        assert json.loads((partial / "checkpoint" / "state.json").read_text())["steps"] == 12
        assert len(list((partial / "features").glob("*.f32"))) == 2  # train and validation: not recomputed
    p = _run(["train", "--resume", out])
    assert p.returncode == 0, p.stderr
    assert not partial.exists() and not (out / "checkpoint").exists() and not (out / "features").exists()
    _same_result(ref, out)


def test_ctrl_c_checkpoints_says_how_to_resume_and_resumes(setup, tmp_path):
    d, args, ref, sms_file = setup
    out = tmp_path / "m"
    p = _run(args + ["--output", out], die_at="step:7:INT")
    assert p.returncode == 130
    err = p.stderr.strip().splitlines()[-1]
    assert err.startswith("lmclassify: interrupted") and f"lmclassify train --resume {out}" in err
    state = json.loads((tmp_path / "m.partial" / "checkpoint" / "state.json").read_text())
    assert state["steps"] == 7 and state["epoch"] == 0 and state["batch"] == 7
    p = _run(args + ["--output", out, "--resume"])  # the same command, resumed: options must agree
    assert p.returncode == 0, p.stderr
    _same_result(ref, out)


def test_resume_with_other_options_or_data_is_refused(setup, tmp_path):
    d, args, ref, sms_file = setup
    out = tmp_path / "m"
    assert _run(args + ["--output", out], die_at="step:5").returncode == -9
    i = args.index("--epochs")
    p = _run(args[:i] + ["--epochs", "4"] + args[i + 2:] + ["--output", out, "--resume"])
    assert p.returncode == 2 and "train.epochs: 3 -> 4" in p.stderr and p.stderr.count("\n") == 1
    other = _sms_csv(sms_file, tmp_path / "other.csv", n=80)
    p = _run(["train", "--data", other] + args[3:] + ["--output", out, "--resume"])
    assert p.returncode == 2 and "data.data" in p.stderr
    p = _run(args + ["--output", out])  # neither --resume nor --overwrite: the partial run is kept
    assert p.returncode == 2 and "pass --resume to continue it" in p.stderr
    assert (tmp_path / "m.partial" / "checkpoint").is_dir()
    p = _run(["train", "--resume", tmp_path / "none"])
    assert p.returncode == 2 and "nothing to resume" in p.stderr
    p = _run(["train", "--resume", out])  # and it still resumes
    assert p.returncode == 0, p.stderr
    _same_result(ref, out)
    p = _run(["train", "--resume", out])
    assert p.returncode == 2 and "exists" in p.stderr


def test_progress_lines_tensorboard_and_a_visible_log(tiny_gpt2_dir, sms_file, tmp_path):
    """One line per evaluation on stderr though stderr is no terminal; the metrics log is at
    OUTPUT.partial/metrics.jsonl while training (named at start); TensorBoard scalars."""
    data = _sms_csv(sms_file, tmp_path / "sms.csv", n=64)
    out = tmp_path / "m"
    p = _run(["train", "--data", data, "--model", tiny_gpt2_dir, "--epochs", "2", "--batch-size", "8",
              "--learning-rate", "1e-3", "--monitor", "val_accuracy", "--report-to", "tensorboard", "--output", out])
    assert p.returncode == 0, p.stderr
    assert f"metrics log {tmp_path / 'm.partial' / 'metrics.jsonl'}" in p.stdout
    lines = [x for x in p.stderr.splitlines() if x.startswith("epoch ")]
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2  step 6/12  train_loss ")
    assert "val_accuracy " in lines[1] and "(best " in lines[1] and "elapsed " in lines[1]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/learning_rate", "val/accuracy", "val/loss"} <= tags
    log = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [e.step for e in acc.Scalars("val/accuracy")] == [r["step"] for r in log]
    assert [round(e.value, 5) for e in acc.Scalars("val/accuracy")] == [round(r["val_accuracy"], 5) for r in log]


@pytest.mark.slow
def test_real_model_killed_mid_epoch_resumes_bit_identically(sms_file, tmp_path):
    """The real all-MiniLM-L6-v2, its top two blocks trained from the feature cache."""
    data = _sms_csv(sms_file, tmp_path / "sms.csv", n=120)
    args = ["train", "--data", data, "--model", "minilm-l6", "--epochs", "2", "--train-layers", "2",
            "--batch-size", "8", "--save-every", "3", "--seed", "11"]
    p = _run(args + ["--output", tmp_path / "ref"])
    assert p.returncode == 0, p.stderr
    assert _run(args + ["--output", tmp_path / "m"], die_at="step:17").returncode == -9
    p = _run(["train", "--resume", tmp_path / "m"])
    assert p.returncode == 0, p.stderr
    _same_result(tmp_path / "ref", tmp_path / "m")
