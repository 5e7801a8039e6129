"""The typed run config: a saved config reloads to the same object; typos are errors."""
import pytest

from lmclassify.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from lmclassify.errors import LmClassifyError


def test_run_config_round_trips_through_json(tmp_path):
    cfg = RunConfig(model=ModelConfig(name="minilm-l6", train_layers=2, pooling="mean"),
                    data=DataConfig(split=(0.8, 0.1, 0.1)), train=TrainConfig(epochs=3, learning_rate=1e-4))
    cfg.save(tmp_path / "c.json")
    back = RunConfig.load(tmp_path / "c.json")
    assert back == cfg and back.data.split == (0.8, 0.1, 0.1)  # JSON lists come back as tuples


def test_partial_config_fills_defaults_and_typos_fail():
    assert RunConfig.from_dict({"train": {"epochs": 2}}).train == TrainConfig(epochs=2)
    with pytest.raises(LmClassifyError, match="unknown config section"):
        RunConfig.from_dict({"trian": {}})
    with pytest.raises(LmClassifyError, match="unknown train option.*epoch"):
        RunConfig.from_dict({"train": {"epoch": 2}})
