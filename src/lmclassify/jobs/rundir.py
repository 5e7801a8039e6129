"""Where a training run lives until it is complete: ``<output>.partial/``, a visible folder
holding the run's config and data fingerprint, the metrics log (readable from the first
evaluation), TensorBoard events, the checkpoint, the feature cache, and finally the model
files. Renamed to
``<output>`` only when everything is written, so an existing model directory is never
half-replaced; kept after a crash or Ctrl-C once a checkpoint exists, so ``--resume``
can continue; removed when the run fails before that.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path

from ..config import RunConfig, TrainConfig
from ..errors import LmClassifyError
from ..training.checkpoint import NAME as CHECKPOINT

CONFIG, DATA = "run_config.json", "run_data.json"
FEATURES = "features"  # the frozen prefix's outputs, on disk so a resumed run need not recompute them


def partial_of(output: Path) -> Path:
    return output.with_name(output.name + ".partial")


def output_of(path: Path) -> Path:
    """The output a ``--resume`` path names: the output itself or its ``.partial`` folder."""
    path = Path(path)
    return path.with_name(path.name.removesuffix(".partial")) if path.name.endswith(".partial") else path


def data_fingerprint(splits: dict) -> str:
    """A hash over every split's inputs and labels: a resumed run must see the same data."""
    h = hashlib.sha256()
    for name, ex in splits.items():
        if ex is not None:
            h.update(json.dumps([name, ex.inputs(), ex.labels], default=str, ensure_ascii=False).encode())
    return h.hexdigest()


def config_differences(saved: RunConfig, given: RunConfig) -> list[str]:
    """``section.key: saved -> given`` for every option that changes what a run computes."""
    out = []
    a, b = saved.to_dict(), given.to_dict()
    for section in a:
        for key in a[section]:
            if section == "train" and key in TrainConfig.RUN_ONLY:
                continue
            x, y = a[section][key], b[section][key]
            if (list(x) if isinstance(x, tuple) else x) != (list(y) if isinstance(y, tuple) else y):
                out.append(f"{section}.{key}: {x!r} -> {y!r}")
    return out


class RunDir:
    """The ``.partial`` folder of one output, from the checks before a run to the rename."""

    def __init__(self, output: Path, config_type: type = RunConfig):
        self.output = Path(output)
        self.path = partial_of(self.output)
        self.config_type = config_type  # what run_config.json holds (``pretrain``: PretrainRunConfig)

    def check_writable(self, overwrite: bool, resume: bool) -> None:
        """Refuse, before any data or model is loaded, what would fail or destroy later."""
        out = self.output
        if out.exists() and not out.is_dir():
            raise LmClassifyError(f"output {out} is a file, not a directory; choose another --output")
        if out.exists() and not overwrite:
            raise LmClassifyError(f"output directory {out} exists; pass --overwrite to replace it"
                                  + (" (the run it holds is complete)" if resume else ""))
        parent = out.parent if str(out.parent) else Path(".")
        probe = parent
        while not probe.exists():
            probe = probe.parent
        if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
            raise LmClassifyError(f"cannot write under {probe}: not a writable directory")
        if resume and not (self.path / CONFIG).is_file():
            raise LmClassifyError(f"nothing to resume: {self.path} holds no interrupted run")
        if not resume and self.path.exists():
            if not overwrite:
                raise LmClassifyError(f"an interrupted run of {out} is in {self.path}: pass --resume to continue it "
                                      f"or --overwrite to start over")
            shutil.rmtree(self.path)

    def start(self, cfg: RunConfig, fingerprint: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        cfg.save(self.path / CONFIG)
        (self.path / DATA).write_text(json.dumps({"sha256": fingerprint}) + "\n")

    def saved_config(self) -> RunConfig:
        return self.config_type.load(self.path / CONFIG)

    def check_resume(self, cfg: RunConfig, fingerprint: str) -> None:
        """A resume must compute the same thing: same options, same data."""
        diffs = config_differences(self.saved_config(), cfg)
        if diffs:
            raise LmClassifyError(f"cannot resume {self.output} with other options ({'; '.join(diffs)}); "
                                  f"resume with the same options, or start over with --overwrite")
        saved = json.loads((self.path / DATA).read_text()).get("sha256")
        if saved != fingerprint:
            raise LmClassifyError(f"cannot resume {self.output}: the data differs from the interrupted run's; "
                                  f"start over with --overwrite")

    def abandon(self, has_checkpoint: bool) -> None:
        """After a failure: keep the folder only if there is something to resume."""
        if not has_checkpoint:
            shutil.rmtree(self.path, ignore_errors=True)

    def finish(self) -> Path:
        """Rename the complete run into place (replacing an old output only now), then drop
        what only resuming needed."""
        out = self.output
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(self.path, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.path, out)
        shutil.rmtree(out / CHECKPOINT, ignore_errors=True)
        shutil.rmtree(out / FEATURES, ignore_errors=True)
        for name in (CONFIG, DATA):
            (out / name).unlink(missing_ok=True)
        return out


def with_run_options(cfg: TrainConfig, run: TrainConfig) -> TrainConfig:
    """``cfg`` with the run-only options of ``run`` (how it was watched, where it ran)."""
    return dataclasses.replace(cfg, **{k: getattr(run, k) for k in TrainConfig.RUN_ONLY})


__all__ = ["RunDir", "partial_of", "output_of", "data_fingerprint", "config_differences", "with_run_options"]
