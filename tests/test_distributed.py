"""Training on several processes (``training/distributed.py``): two gloo processes end
with the weights of one process trained on the same global batches; ``torchrun -m
lmclassify train`` writes one output directory; a rank that dies ends the job with one
line and a non-zero exit, and the run resumes under torchrun.

Exact 1-vs-2-process equality needs no dropout: each rank draws its own dropout masks for
its slice, so with dropout the runs are equivalent in distribution, not in value. The
tiny Llama has none; the tiny BERT is copied with its dropout set to 0."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lmclassify.training import distributed
from test_cli import _sms_csv

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "LMCLASSIFY_DIE_AT": ""}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- the slicing rule, without processes ---------------------------------------------------

@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("size", [1, 2, 5, 7])
def test_shards_average_to_the_global_batch_gradient(monkeypatch, world, size):
    """Each rank's mean loss times its share, averaged over ranks as DDP does, has the
    gradient of the global batch's mean loss, for slices of unequal size and empty ones."""
    torch.manual_seed(0)
    x, y = torch.randn(size, 3), torch.randn(size)
    w = torch.randn(3, requires_grad=True)
    idx = np.arange(size)
    ((x @ w - y) ** 2).mean().backward()
    want, w.grad = w.grad.clone(), None
    monkeypatch.setattr(distributed, "world_size", lambda: world)
    covered = []
    for r in range(world):
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        mine, share = distributed.shard(idx)
        if share:
            covered += mine.tolist()
        (share * ((x[mine] @ w - y[mine]) ** 2).mean() / world).backward()  # DDP averages over ranks
    assert covered == idx.tolist()  # every example once, in order
    assert torch.allclose(w.grad, want, atol=1e-6)


def test_one_process_is_untouched():
    assert not distributed.active() and distributed.is_main() and distributed.world_size() == 1
    idx = np.arange(4)
    mine, share = distributed.shard(idx)
    assert mine is idx and share == 1.0
    assert distributed.sum_over_ranks(1.5, 2) == (1.5, 2) and distributed.gather_rows([1, None]) == [1, None]


# ---- two gloo processes through the Python API ---------------------------------------------

TEXTS = ["good film", "a bad movie here", "great", "awful thing it was, truly", "fine", "not good at all",
         "I loved every minute", "boring", "superb acting and a plot", "meh"] * 2 + ["ok then"]
LABELS = (["pos", "neg"] * 5) * 2 + ["pos"]
WORDS = [["Paris", "is", "big"], ["I", "love", "Rome", "a", "lot"], ["Obama", "went", "home"], ["Berlin"]] * 3
TAGS = [["B-loc", "O", "O"], ["O", "O", "B-loc", "O", "O"], ["B-per", "O", "O"], ["B-loc"]] * 3
# 21 texts in batches of 5 (slices of 3 and 2; the last batch one text, so one rank runs
# a stand-in weighted 0), two batches a step; 12 sentences in batches of 5 with a CRF (its
# parameters get gradients through the loss, not the forward). Adam turns the rounding
# noise of near-zero gradients (a key bias's) into steps of ~1e-5 at this learning rate;
# slices left unweighted move weights by ~1e-2.
COMMON = dict(epochs=2, learning_rate=1e-2, seed=3, keep_best=False, progress=False)


def _fits(llama: str, bert: str) -> dict:
    from lmclassify import TextClassifier, TokenClassifier

    out = {}
    text = TextClassifier(llama, batch_size=5, grad_accum=2, train_layers=2, **COMMON)
    text.fit(TEXTS, LABELS, validation=(TEXTS[:6], LABELS[:6]))
    tokens = TokenClassifier(bert, crf=True, batch_size=5, **COMMON).fit(WORDS, TAGS, validation=(WORDS[:4], TAGS[:4]))
    for name, est in (("text", text), ("tokens", tokens)):
        out[name] = {n: p.detach().clone() for n, p in est.module_.named_parameters() if p.requires_grad}
        out[name + "_history"] = est.fit_result_.history
    return out


def _rank_main(rank: int, port: int, llama: str, bert: str, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank),
                      LOCAL_RANK=str(rank), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    torch.set_num_threads(1)
    result = _fits(llama, bert)
    assert distributed.active() and distributed.world_size() == 2
    torch.save(result, Path(out_dir) / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def bert_without_dropout(tiny_bert_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bert-no-dropout")
    for f in tiny_bert_dir.iterdir():
        shutil.copy(f, out / f.name)
    cfg = json.loads((out / "config.json").read_text())
    cfg.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (out / "config.json").write_text(json.dumps(cfg))
    return out


def test_two_gloo_processes_train_the_same_weights_as_one(tiny_llama_dir, bert_without_dropout, tmp_path):
    torch.set_num_threads(1)
    one = _fits(str(tiny_llama_dir), str(bert_without_dropout))
    torch.multiprocessing.spawn(_rank_main, args=(_free_port(), str(tiny_llama_dir), str(bert_without_dropout),
                                                  str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for name in ("text", "tokens"):
        assert set(ranks[0][name]) == set(one[name])
        for n, p in one[name].items():
            assert torch.equal(ranks[0][name][n], ranks[1][name][n]), n  # the ranks agree exactly
            assert torch.allclose(ranks[0][name][n], p, atol=1e-4, rtol=1e-4), (name, n)
            assert not torch.equal(p, torch.zeros_like(p))
        # the logged statistics are the global batch's: the same counts, the same losses
        h1, h2 = one[name + "_history"], ranks[0][name + "_history"]
        assert [r["examples_seen"] for r in h1] == [r["examples_seen"] for r in h2]
        assert [r["step"] for r in h1] == [r["step"] for r in h2]
        assert np.allclose([r["train_loss"] for r in h1], [r["train_loss"] for r in h2], rtol=1e-4)
        assert np.allclose([r["val_loss"] for r in h1], [r["val_loss"] for r in h2], rtol=1e-4)
        assert h2 == ranks[1][name + "_history"]


# ---- the CLI under torchrun ----------------------------------------------------------------

def _torchrun(args: list, cwd: Path, script: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(_free_port())]
    cmd += [str(script)] if script else ["-m", "lmclassify"]
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, cwd=cwd,
                          env={**ENV, **(env or {})}, timeout=400)


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory, tiny_llama_dir, sms_file):
    """One 2-process torchrun of `lmclassify train` and the same run in one process."""
    from lmclassify.cli import main

    d = tmp_path_factory.mktemp("torchrun")
    data = _sms_csv(sms_file, d / "sms.csv", n=40)
    # 28 training texts, batch 3: ten batches (the last one text), two a step
    args = ["train", "--data", data, "--model", tiny_llama_dir, "--epochs", "2", "--batch-size", "3",
            "--grad-accum", "2", "--learning-rate", "1e-3", "--seed", "7", "--train-layers", "2", "--no-keep-best",
            "--eval-every", "2"]
    runs = d / "runs"
    runs.mkdir()
    p = _torchrun(args + ["--output", runs / "two"], cwd=d)
    assert p.returncode == 0, p.stderr[-3000:]
    torch.set_num_threads(1)
    assert main([str(a) for a in args + ["--output", d / "one"]]) == 0
    return d, args, runs, p


def _weights(d: Path) -> dict:
    return load_file(str(d / "model.safetensors"))


def test_torchrun_cli_writes_one_directory_with_the_one_process_weights(cli_runs):
    d, args, runs, p = cli_runs
    assert [x.name for x in runs.iterdir()] == ["two"]  # no .partial, no second rank's leftovers
    assert not any(x.name.startswith(".") for x in (runs / "two").iterdir())
    assert p.stdout.count("model, report and plots written to") == 1  # only rank 0 prints
    assert p.stdout.count("data: train 28") == 1
    one, two = _weights(d / "one"), _weights(runs / "two")
    assert set(one) == set(two)
    for n in one:
        assert torch.allclose(one[n], two[n], atol=1e-5, rtol=1e-4), n
    log1, log2 = ([json.loads(x) for x in (r / "metrics.jsonl").read_text().splitlines()] for r in (d / "one", runs / "two"))
    assert len(log1) == 5  # every second step of 2 x 5
    assert [r["examples_seen"] for r in log1] == [r["examples_seen"] for r in log2]
    assert [r["step"] for r in log1] == [r["step"] for r in log2]
    assert np.allclose([r["val_loss"] for r in log1], [r["val_loss"] for r in log2], rtol=1e-4)
    m1, m2 = (json.loads((r / "metrics.json").read_text()) for r in (d / "one", runs / "two"))
    assert m1["test"]["accuracy"] == m2["test"]["accuracy"] and m1["train_tokens"] == m2["train_tokens"]


def test_a_refused_run_under_torchrun_says_so_once(cli_runs):
    d, args, runs, _ = cli_runs
    p = _torchrun(args + ["--output", runs / "two"], cwd=d)  # exists, no --overwrite
    assert p.returncode != 0
    ours = [x for x in p.stderr.splitlines() if x.startswith("lmclassify:")]
    assert len(ours) == 1 and "exists; pass --overwrite" in ours[0], p.stderr[-3000:]
    assert [x.name for x in runs.iterdir()] == ["two"]


def test_a_dying_rank_ends_the_job_in_one_line_and_the_run_resumes_under_torchrun(cli_runs, tmp_path):
    d, args, runs, _ = cli_runs
    # rank 1 is killed (SIGKILL, as the OOM killer would) after step 3; rank 0 is then in the
    # next batch's collective
    script = tmp_path / "rank1_dies.py"
    script.write_text("import os, sys\n"
                      "if os.environ['RANK'] == '1':\n"
                      "    os.environ['LMCLASSIFY_DIE_AT'] = 'step:3'\n"
                      "from lmclassify.cli import main\n"
                      "sys.exit(main())\n")
    out = tmp_path / "m"
    p = _torchrun(args + ["--output", out], cwd=d, script=script)
    assert p.returncode != 0
    ours = [x for x in p.stderr.splitlines() if x.startswith("lmclassify:")]
    assert len(ours) == 1 and "another process of this torchrun job failed" in ours[0], p.stderr[-3000:]
    assert "/lmclassify/" not in p.stderr  # no traceback from our code, only torchrun's own report
    partial = tmp_path / "m.partial"
    assert json.loads((partial / "checkpoint" / "state.json").read_text())["steps"] == 2  # the last evaluation
    assert not out.exists()
    p = _torchrun(["train", "--resume", out], cwd=d)
    assert p.returncode == 0, p.stderr[-3000:]
    assert not partial.exists() and sorted(x.name for x in tmp_path.iterdir()) == ["m", "rank1_dies.py"]
    two, resumed = _weights(runs / "two"), _weights(out)
    for n in two:
        assert torch.allclose(two[n], resumed[n], atol=1e-6), n
    assert (out / "metrics.jsonl").read_text() == (runs / "two" / "metrics.jsonl").read_text()


def test_a_rank_stopped_by_torchrun_says_what_a_broken_collective_says():
    """Which a surviving rank meets first when another dies, torchrun's SIGTERM or the
    broken collective, is a race: both end in the same one line."""
    from lmclassify.training import distributed

    with pytest.raises(distributed.PeerFailed, match="another process of this torchrun job failed"):
        distributed._stopped(15, None)
