"""One typed configuration per run, saved beside the weights so any run can be redone.

Three sections mirror the pipeline: what model, what data, how to train. Unknown
keys are errors (a typo must not silently fall back to a default).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from .errors import LmClassifyError


@dataclass
class ModelConfig:
    name: str = "smollm2-135m"  # built-in name, local HF dir, .gguf file or hub id
    train_layers: Union[int, str] = "auto"  # N last blocks (+ final norm + head), "all", "head"; auto: see load.py
    pooling: str = "auto"  # auto = last for decoders, cls for encoders
    head: str = "linear"  # linear | mlp (Linear, GELU, dropout, Linear)
    head_bias: bool = False  # False keeps the directory loadable by plain transformers
    task: str = "auto"  # auto (from the labels) | single | multi | regression
    pair_mode: str = "joint"  # text pairs: joint (one sequence) | siamese (each text alone, [u, v, |u-v|])
    max_length: Optional[int] = 256
    input_template: str = "auto"  # decoders with a chat template read texts as a user turn


@dataclass
class DataConfig:
    recipe: Optional[str] = None
    data: Optional[str] = None  # one file, split by `split`
    train: Optional[str] = None
    validation: Optional[str] = None
    test: Optional[str] = None
    text_column: str = "text"
    label_column: str = "label"
    text_pair_column: Optional[str] = None  # a second text per row: sentence-pair tasks
    label_separator: str = ","  # between the labels of one row, for multi-label data
    split: tuple = (0.7, 0.1, 0.2)
    balance: Optional[str] = None  # None or "undersample"
    positive_label: Optional[str] = None


@dataclass
class TrainConfig:
    epochs: int = 5
    batch_size: int = 8
    learning_rate: float = 5e-5
    weight_decay: float = 0.1
    schedule: str = "constant"  # constant | linear | cosine
    warmup_ratio: float = 0.0
    grad_accum: int = 1
    max_grad_norm: Optional[float] = 1.0
    seed: int = 123
    eval_every: Optional[int] = None  # steps; None = once per epoch
    patience: Optional[int] = None  # early stopping, in evaluations
    monitor: str = "val_loss"  # val_<any metric of the task>: val_accuracy, val_f1_macro, val_pearson, ...
    class_weights: Optional[str] = None  # None, "auto" (inverse frequency) or "w1,w2,..." in class order
    keep_best: bool = True  # restore the weights of the best evaluation at the end
    feature_cache: bool = True
    eval_batch_size: int = 64
    device: str = "auto"
    compile: bool = False  # torch.compile the training forward (pays off on GPU and long runs)


class SectionedConfig:
    """Save/load for a run config made of typed sections. ``SECTIONS`` names each
    section's dataclass; ``BASE`` holds per-section values a partial dict starts from
    (a saved config holds every key, so it never needs them)."""

    SECTIONS: dict[str, type] = {}
    BASE: dict[str, dict] = {}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        unknown = set(d) - set(cls.SECTIONS)
        if unknown:
            raise LmClassifyError(f"unknown config section(s): {', '.join(sorted(unknown))}")
        return cls(**{k: _build(t, {**cls.BASE.get(k, {}), **d.get(k, {})}, k) for k, t in cls.SECTIONS.items()})

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path):
        return cls.from_dict(json.loads(Path(path).read_text()))


@dataclass
class RunConfig(SectionedConfig):
    SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def _build(section_type: type, values: dict, section: str) -> Any:
    names = {f.name for f in dataclasses.fields(section_type)}
    unknown = set(values) - names
    if unknown:
        raise LmClassifyError(
            f"unknown {section} option(s): {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(names))})"
        )
    values = dict(values)
    if "split" in values and isinstance(values["split"], list):
        values["split"] = tuple(values["split"])
    return section_type(**values)


def parse_train_layers(value: Union[str, int]) -> Union[int, str]:
    """`--train-layers` accepts N >= 0, 'all', 'head' (= 0 blocks) or 'auto' (per model kind)."""
    if isinstance(value, int):
        n = value
    elif value in ("all", "head", "auto"):
        return value
    else:
        try:
            n = int(value)
        except ValueError:
            raise LmClassifyError(f"--train-layers must be a number, 'all', 'head' or 'auto', not {value!r}")
    if n < 0:
        raise LmClassifyError(f"--train-layers must be >= 0, not {n}")
    return n
