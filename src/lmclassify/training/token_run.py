"""The `train-tokens` job as an importable function: CoNLL data -> fit -> evaluate every
split -> model directory with metrics, curves and a report. Returns the metrics.

The configuration is one typed object in three sections (model / data / train, the train
section being the same TrainConfig the text classifier uses), saved beside the weights.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

from ..artifacts import staged_output
from ..config import SectionedConfig, TrainConfig
from ..data.conll import Sentences, encode_tags, get_conll_recipe, read_conll, tag_set
from ..errors import LmClassifyError
from ..evaluation.metrics import MetricsLog, read_metrics_log
from ..evaluation.plots import plot_training_curves
from ..token_classifier import TOKEN_TRAIN_DEFAULTS, TokenClassifier, TokenModelConfig

SPLITS = ("train", "validation", "test")


@dataclass
class TokenDataConfig:
    recipe: Optional[str] = None  # e.g. wnut17: the three files below come from the recipe
    train: Optional[str] = None  # CoNLL files
    validation: Optional[str] = None
    test: Optional[str] = None


@dataclass
class TokenRunConfig(SectionedConfig):
    SECTIONS = {"model": TokenModelConfig, "data": TokenDataConfig, "train": TrainConfig}
    BASE = {"train": TOKEN_TRAIN_DEFAULTS}  # a partial config's train section starts from the token defaults

    model: TokenModelConfig = field(default_factory=TokenModelConfig)
    data: TokenDataConfig = field(default_factory=TokenDataConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(**TOKEN_TRAIN_DEFAULTS))


def apply_token_recipe(cfg: TokenRunConfig, overrides: Optional[dict] = None) -> TokenRunConfig:
    """A recipe names the files and the options it was tuned with; ``overrides`` (the
    options given explicitly, per section) still win."""
    if cfg.data.recipe:
        r = get_conll_recipe(cfg.data.recipe)
        model_keys = {f.name for f in dataclasses.fields(TokenModelConfig)}
        cfg = TokenRunConfig(
            model=replace(cfg.model, **{k: v for k, v in r.defaults.items() if k in model_keys}),
            data=cfg.data,
            train=replace(cfg.train, **{k: v for k, v in r.defaults.items() if k not in model_keys}))
    for section, values in (overrides or {}).items():
        setattr(cfg, section, replace(getattr(cfg, section), **values))
    return cfg


def load_token_splits(dc: TokenDataConfig) -> tuple[Sentences, Optional[Sentences], Optional[Sentences]]:
    if dc.recipe:
        return get_conll_recipe(dc.recipe).load()
    if not dc.train:
        raise LmClassifyError("no data: pass --train FILE (CoNLL) or --recipe NAME (e.g. wnut17)")
    return tuple(read_conll(p) if p else None for p in (dc.train, dc.validation, dc.test))  # type: ignore


def run_token_training(cfg: TokenRunConfig, output: Path, overwrite: bool = False, progress: bool = True) -> dict:
    """Train, evaluate on every split, write the model directory; returns its path and metrics."""
    with staged_output(Path(output), overwrite) as tmp:
        train, val, test = load_token_splits(cfg.data)
        if progress:
            print("data: " + ", ".join(f"{n} {len(s)} sentences" for n, s in zip(SPLITS, (train, val, test)) if s))
        tag2id = {t: i for i, t in enumerate(tag_set(train.tags))}
        for name, s in (("validation", val), ("test", test)):
            if s is not None:  # a tag the model could never produce: say so before training
                encode_tags(s, tag2id, name)
        log = MetricsLog(tmp / "metrics.jsonl")
        clf = TokenClassifier(model_config=cfg.model, train_config=cfg.train, progress=progress)
        clf.fit(train, None, validation=val, log=log.log)
        metrics = {}
        for name, s in zip(SPLITS, (train, val, test)):
            if s is not None:
                metrics[name] = clf.evaluate(s.tokens, s.tags, split=name)
        fr = clf.fit_result_
        metrics.update(train_seconds=round(clf.train_seconds_, 3), parameters=clf.parameter_counts_,
                       feature_cache=clf.feature_cache_, steps=fr.steps, best_step=fr.best_step,
                       stopped_early=fr.stopped_early, train_tokens=fr.train_tokens)
        clf.save(tmp)
        cfg.save(tmp / "training_config.json")
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        plots = plot_training_curves(read_metrics_log(tmp / "metrics.jsonl"), tmp)
        notes = clf.compatibility_notes() or [
            "loads with plain transformers: AutoModelForTokenClassification (or pipeline('token-classification', "
            "model=DIR, aggregation_strategy='first')) gives the same tag per word"]
        model = cfg.model.name + (" + CRF" if cfg.model.crf else "")
        title = f"lmclassify: {model} on {cfg.data.recipe or cfg.data.train}"
        (tmp / "report.md").write_text(render_token_report(metrics, cfg.to_dict(), title, notes,
                                                           [p.name for p in plots]), encoding="utf-8")
    return {"output": str(output), "metrics": metrics}


def render_token_report(metrics: dict, config: dict, title: str, notes=(), plots=()) -> str:
    """report.md: entity scores per split, per-type scores on the last split, the config."""
    f = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    cols = ("entity_precision", "entity_recall", "entity_f1", "f1_macro", "token_accuracy", "loss")
    lines = [f"# {title}", "", "## Summary", "", "| split | sentences | entities | " + " | ".join(cols) + " |",
             "|" + "---|" * (len(cols) + 3)]
    splits = [s for s in SPLITS if s in metrics]
    for s in splits:
        m = metrics[s]
        lines.append(f"| {s} | {m['n']} | {m['n_entities']} | " + " | ".join(f(m[c]) for c in cols) + " |")
    lines += ["", "## Run", ""] + [f"- {k}: {v}" for k, v in metrics.items() if k not in SPLITS]
    last = splits[-1]
    lines += ["", f"## Per entity type ({last})", "", "| type | precision | recall | f1 | support |",
              "|---|---|---|---|---|"]
    lines += [f"| {t} | {f(c['precision'])} | {f(c['recall'])} | {f(c['f1'])} | {c['support']} |"
              for t, c in metrics[last]["per_class"].items()]
    lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots]
    lines += ["", "## Configuration", "", "```json", json.dumps(config, indent=2, default=str), "```", ""]
    return "\n".join(lines)
