"""The benchmark recipes read their published splits from $LMCLASSIFY_DATA: sizes as
documented, task shapes as declared, a clear error where the data is missing, and
recipe options that explicit options override."""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from lmclassify.data.recipes import RECIPES, get_recipe
from lmclassify.errors import LmClassifyError
from lmclassify.tasks import infer_task

DATA = Path(os.environ.get("LMCLASSIFY_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")

SIZES = {"sst2": (6920, 872, 1821), "trec": (4907, 545, 500), "mrpc": (3668, 408, 1725), "rte": (2490, 277, None),
         "stsb": (5749, 1500, 1379), "goemotions": (43410, 5426, 5427)}
FOLDERS = {"sst2": "sst2", "trec": "trec", "mrpc": "mrpc", "rte": "rte", "stsb": "stsb", "goemotions": "goemotions",
           "wnut17": "wnut17"}


@pytest.mark.parametrize("name", sorted(SIZES))
def test_published_splits_sizes_shapes_and_pairs(name):
    if not (DATA / FOLDERS[name]).is_dir():
        pytest.skip(f"{name} data not found under {DATA}")
    r = get_recipe(name)
    train, val, test = r.load_splits(123)
    assert tuple(None if s is None else len(s) for s in (train, val, test)) == SIZES[name]
    assert infer_task(train.labels) == r.task
    assert (train.pairs is not None) == (name in ("mrpc", "rte", "stsb"))
    assert r.metric[0] in ("validation", "test") and r.defaults["max_length"] > 0
    for s in (val, test):
        if s is not None and s.labels is not None and r.task == "single":
            assert set(s.labels) <= set(train.labels)  # every scored label was seen in training


def test_label_names_and_carving():
    if not (DATA / "trec").is_dir() or not (DATA / "sst2").is_dir():
        pytest.skip("data not found")
    train, dev, test = get_recipe("trec").load_splits(123)
    assert set(train.labels) == {"ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"}
    assert get_recipe("trec").load_splits(123)[1].texts == dev.texts  # the seed fixes the carve
    assert get_recipe("trec").load_splits(7)[1].texts != dev.texts
    assert len(train) + len(dev) == 5452  # every TREC.train row in exactly one of the two
    assert Counter(get_recipe("sst2").load_splits(1)[2].labels) == {"negative": 912, "positive": 909}
    assert any("sister\u00f0city" in t for t in train.texts + dev.texts)  # the one latin-1 byte, 0xF0


def test_goemotions_labels_are_lists_of_names():
    if not (DATA / "goemotions").is_dir():
        pytest.skip("data not found")
    train, _, _ = get_recipe("goemotions").load_splits(0)
    assert train.labels[0] == ["neutral"] and sum(len(y) > 1 for y in train.labels) / len(train) > 0.1


@pytest.mark.parametrize("name", [n for n in RECIPES if n != "sms-spam"])
def test_missing_data_says_where_to_put_it(tmp_path, monkeypatch, name):
    monkeypatch.setenv("LMCLASSIFY_DATA", str(tmp_path))
    with pytest.raises(LmClassifyError, match=rf"{FOLDERS[name]} data not found: put .* in {tmp_path}/{FOLDERS[name]}/"):
        get_recipe(name).load_splits(1)


def test_recipe_options_fill_every_section_and_explicit_options_win():
    from lmclassify.cli import build_parser
    from lmclassify.cli.options import config_from_args as from_args
    from lmclassify.jobs.train import resolve

    def config_from_args(a):  # what the train job runs: the recipe applied
        return resolve(from_args(a))

    a = build_parser().parse_args(["train", "--recipe", "stsb", "--output", "x"])
    cfg = config_from_args(a)
    assert cfg.model.name == "minilm-l6"  # the model the recipe was tuned with
    assert cfg.model.task == "regression" and cfg.model.max_length == 128
    assert cfg.train.schedule == "linear" and cfg.train.epochs == RECIPES["stsb"].defaults["epochs"]
    assert cfg.train.monitor == "val_pearson"  # best weights by the recipe's own metric
    a = build_parser().parse_args(["train", "--recipe", "stsb", "--output", "x", "--max-length", "32",
                                   "--epochs", "1", "--schedule", "cosine", "--task", "single", "--monitor", "val_loss"])
    cfg = config_from_args(a)
    assert (cfg.model.max_length, cfg.train.epochs, cfg.train.schedule, cfg.model.task, cfg.train.monitor) == \
        (32, 1, "cosine", "single", "val_loss")
    cfg = config_from_args(build_parser().parse_args(["train", "--data", "f.csv", "--output", "x"]))
    # no recipe: options stay open for the model family's defaults, filled in at fit time
    assert cfg.model.max_length is None and cfg.train.schedule is None and cfg.model.task == "auto"
    assert cfg.train.monitor is None and cfg.model.name == "smollm2-135m"
