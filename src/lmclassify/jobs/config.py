"""Turning what a user gave (CLI options, a config file, a Python RunConfig) into the run
config a job executes: the recipe applied in this one place, paths made absolute.

Precedence, highest first: options given explicitly, the config file, the recipe (for a
model of the family it was tuned with; otherwise only its data options), the model
family's defaults (filled in by the estimator at fit time).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

from ..config import RunConfig
from ..data.recipes import get_recipe
from ..models.load import model_family
from ..models.resolve import DEFAULT_DECODER, DEFAULT_ENCODER

DEFAULT_SPLIT = (0.7, 0.1, 0.2)
PATH_FIELDS = ("data", "train", "validation", "test")


def merge(base: RunConfig, given: dict) -> RunConfig:
    """``base`` with the options in ``given`` ({section: {field: value}}) replacing its own."""
    sections = {name: dataclasses.replace(getattr(base, name), **given.get(name, {})) for name in RunConfig.SECTIONS}
    return RunConfig(**sections)


def absolute_paths(cfg: RunConfig, relative_to: Optional[Path] = None) -> RunConfig:
    """Data paths made absolute (against ``relative_to``, a config file's folder, or the
    working directory), so a saved config means the same from anywhere."""
    base = Path(relative_to) if relative_to is not None else Path.cwd()
    fixed = {k: str((base / Path(v).expanduser()).resolve()) for k in PATH_FIELDS
             if (v := getattr(cfg.data, k)) is not None}
    return merge(cfg, {"data": fixed})


def apply_recipe(cfg: RunConfig) -> RunConfig:
    """Fill what the config leaves open from its recipe: data handling (split, balance,
    positive label), the task shape, the model it was tuned with, and its options (all of
    them for a model of that family, else only the data's own: max length, monitor)."""
    dc, mc = cfg.data, cfg.model
    if not dc.recipe:
        return merge(cfg, {"data": {"split": tuple(dc.split or DEFAULT_SPLIT),
                                    "balance": None if dc.balance in (None, "none") else dc.balance}})
    r = get_recipe(dc.recipe)
    name = mc.name or r.model
    same = mc.name is None or name == r.model or model_family(name) == model_family(r.model)
    given = {"data": {"split": tuple(dc.split or r.split),
                      "balance": r.balance if dc.balance is None else (None if dc.balance == "none" else dc.balance),
                      "positive_label": dc.positive_label if dc.positive_label is not None else r.positive_label},
             "model": {"name": name, "task": r.task if mc.task == "auto" else mc.task}, "train": {}}
    for key, value in r.options_for(same).items():
        section = "model" if hasattr(mc, key) else "train"
        if getattr(getattr(cfg, section), key) is None:
            given[section][key] = value
    return merge(cfg, given)


def default_model(cfg: RunConfig, token: bool) -> RunConfig:
    """No model named anywhere: the default decoder for text, the default encoder for tags."""
    if cfg.model.name:
        return cfg
    return merge(cfg, {"model": {"name": DEFAULT_ENCODER if token else DEFAULT_DECODER}})
