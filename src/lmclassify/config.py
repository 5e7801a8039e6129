"""One typed configuration per run, saved beside the weights so any run can be redone.

Three sections mirror the pipeline: what model, what data, how to train. This is the one
declaration of every option: the CLI's flags (``cli/options.py``) and the estimators'
parameters (``estimators/base.py``) are derived from these fields and their metadata.

``None`` means "not given": a recipe, then the model family (``FAMILY_DEFAULTS``), then
the task fill it in, and the saved ``training_config.json`` holds the resolved values.
Unknown keys are errors (a typo must not silently fall back to a default).
"""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from .data.splits import parse_fractions
from .errors import LmClassifyError

NETWORKS = ("sequence", "token")


def opt(default: Any = None, help: str = "", *, choices: Optional[tuple] = None, type: Any = None,
        flag: Optional[str] = None, applies: tuple = NETWORKS, cli: bool = True, aliases: tuple = ()) -> Any:
    """A config field with what the CLI and the estimators need to know about it."""
    return field(default=default, metadata={"help": help, "choices": choices, "type": type, "flag": flag,
                                            "applies": applies, "cli": cli, "aliases": aliases})


def parse_train_layers(value: Union[str, int]) -> Union[int, str]:
    """`--train-layers` accepts N >= 0, 'all', 'head' (= 0 blocks) or 'auto' (per model kind)."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    elif value in ("all", "head", "auto"):
        return value
    else:
        try:
            n = int(value)
        except (TypeError, ValueError):
            raise LmClassifyError(f"--train-layers must be a number, 'all', 'head' or 'auto', not {value!r}") from None
    if n < 0:
        raise LmClassifyError(f"--train-layers must be >= 0, not {n}")
    return n


@dataclass
class ModelConfig:
    name: Optional[str] = opt(None, "built-in name (smollm2-135m, minilm-l6), local HF directory, .gguf file or "
                                    "hub id (default: the recipe's model, else smollm2-135m for text and "
                                    "minilm-l6 for token tasks)", flag="--model")
    train_layers: Union[int, str, None] = opt(
        None, "N last blocks (+ final norm + head), 'all', 'head' or 'auto' (default: 1 for decoders, every "
              "block for encoders, 2 for token tasks)", type=parse_train_layers)
    pooling: str = opt("auto", "auto: last for decoders, cls for encoders",
                       choices=("auto", "last", "cls", "mean", "max", "attention"), applies=("sequence",))
    head: str = opt("linear", "mlp: Linear, GELU, dropout, Linear (lmclassify's own head)", choices=("linear", "mlp"))
    head_bias: bool = opt(False, "add a bias to a decoder's linear head", applies=("sequence",))
    crf: bool = opt(False, "token tasks: a CRF over the word scores (learned transitions, Viterbi)",
                    applies=("token",))
    task: str = opt("auto", "auto (default): CoNLL files -> token; lists or separated labels -> multi; "
                            "fractional numbers -> regression; else single",
                    choices=("auto", "single", "multi", "regression", "token"), applies=("sequence",))
    pair_mode: str = opt("joint", "text pairs: joint (one sequence) or siamese (each text alone, head on "
                                  "[u, v, |u-v|])", choices=("joint", "siamese"), applies=("sequence",))
    max_length: Optional[int] = opt(None, "tokens per text (pair, sentence); longer ones are truncated "
                                          "(default 256, 128 for token tasks; clamped to the model's limit)",
                                    type=int)
    input_template: str = opt("auto", "auto: decoders with a chat template read each text as a user turn",
                              choices=("auto", "chat", "none"), applies=("sequence",))


@dataclass
class DataConfig:
    recipe: Optional[str] = opt(None, "built-in data recipe: sms-spam, sst2, trec, mrpc, rte, stsb, goemotions, "
                                      "wnut17")
    data: Optional[str] = opt(None, "one CSV/TSV/JSONL/Parquet file, split by --split")
    train: Optional[str] = opt(None, "training file (with --validation/--test); CoNLL for token tasks")
    validation: Optional[str] = opt(None, "validation file (early stopping, best weights)")
    test: Optional[str] = opt(None, "test file")
    text_column: str = opt("text", "column holding the text")
    label_column: str = opt("label", "column holding the label(s)")
    text_pair_column: Optional[str] = opt(None, "a second text per row: sentence-pair classification/regression")
    label_separator: str = opt(",", "between the labels of one row (multi-label)")
    split: Optional[tuple] = opt(None, "train,validation,test fractions for --data (default 0.7,0.1,0.2; "
                                       "stratified by class for single-label data)", type=parse_fractions)
    balance: Optional[str] = opt(None, "undersample: every class down to the smallest (default: none, or the "
                                       "recipe's)", choices=("none", "undersample"))
    positive_label: Optional[str] = opt(None, "two classes: the one whose precision/recall/F1 is reported")


@dataclass
class TrainConfig:
    epochs: Optional[int] = opt(None, "passes over the training data (default: per model family or recipe)", type=int)
    batch_size: Optional[int] = opt(None, "texts per step", type=int)
    learning_rate: Optional[float] = opt(None, "AdamW learning rate", type=float, aliases=("--lr",))
    weight_decay: Optional[float] = opt(None, "AdamW weight decay (not on biases and norms)", type=float)
    schedule: Optional[str] = opt(None, "learning-rate schedule after warmup", choices=("constant", "linear", "cosine"))
    warmup_ratio: Optional[float] = opt(None, "fraction of the steps spent warming up", type=float)
    grad_accum: int = opt(1, "accumulate gradients over N batches per step", type=int)
    max_grad_norm: Optional[float] = opt(1.0, "clip the gradient norm (0 disables)", type=float)
    seed: int = opt(123, "seeds splits, initialisation and batch order", type=int)
    eval_every: Optional[int] = opt(None, "evaluate every N steps (default: each epoch)", type=int)
    patience: Optional[int] = opt(None, "early stopping after N evaluations without improvement", type=int)
    monitor: Optional[str] = opt(None, "what keeps the best weights: val_loss (default, or the recipe's metric) or "
                                       "val_<metric> of the task (val_accuracy, val_f1_macro, val_pearson, "
                                       "val_entity_f1, ...)")
    class_weights: Optional[str] = opt(None, "'auto' (inverse class frequency) or one weight per class, "
                                             "comma-separated, in sorted class order")
    keep_best: bool = opt(True, "restore the weights of the best evaluation at the end")
    feature_cache: bool = opt(True, "cache the frozen blocks' outputs once instead of every epoch")
    eval_batch_size: int = opt(64, "texts per batch in evaluation and prediction", type=int)
    device: str = opt("auto", "auto, cpu, cuda, cuda:1, mps")
    compile: bool = opt(False, "torch.compile the training forward: worth its start-up cost on a GPU or a long run")
    save_every: Optional[int] = opt(None, "also write a checkpoint every N steps (one is written at every "
                                          "evaluation)", type=int, applies=())
    report_to: str = opt("none", "tensorboard: write TensorBoard event files into the run's tensorboard/ folder",
                         choices=("none", "tensorboard"), applies=())

    # Options that change how a run is watched or where it runs, not what it computes:
    # a resumed run may change them.
    RUN_ONLY = ("device", "eval_batch_size", "save_every", "report_to")


# Options nobody gave, per network and model family. Decoders: the SMS spam recipe's
# (the book's: last block + final norm + head, 5 epochs, batch 8, lr 5e-5). Encoders: what
# the GLUE-style recipes were tuned with for minilm-l6 (bench/tasks.py), every block
# trained. Token tasks: the wnut17 recipe's (top two blocks, the rest cached).
FAMILY_DEFAULTS: dict[tuple[str, str], dict] = {
    ("sequence", "decoder"): {"train_layers": 1, "max_length": 256, "epochs": 5, "batch_size": 8,
                              "learning_rate": 5e-5, "weight_decay": 0.1, "schedule": "constant", "warmup_ratio": 0.0},
    ("sequence", "encoder"): {"train_layers": "auto", "max_length": 256, "epochs": 3, "batch_size": 32,
                              "learning_rate": 1e-4, "weight_decay": 0.01, "schedule": "linear", "warmup_ratio": 0.1},
    ("token", "encoder"): {"train_layers": 2, "max_length": 128, "epochs": 3, "batch_size": 16,
                           "learning_rate": 2e-4, "weight_decay": 0.01, "schedule": "linear", "warmup_ratio": 0.1},
}
FAMILY_DEFAULTS[("token", "decoder")] = FAMILY_DEFAULTS[("token", "encoder")]


def fill_defaults(mc: ModelConfig, tc: TrainConfig, network: str, family: str) -> list[str]:
    """Fill the options left None from the family's defaults (in place); returns their names."""
    filled = []
    for key, value in FAMILY_DEFAULTS[(network, family)].items():
        section = mc if hasattr(mc, key) else tc
        if getattr(section, key) is None:
            setattr(section, key, value)
            filled.append(key)
    return filled


def check_options(mc: ModelConfig, tc: TrainConfig) -> None:
    """Every option checked before any model is loaded (and before any data is read): one line
    naming the option. Types are checked too, since a config file can hold anything JSON can.
    What needs the task or the model (a monitor of this task, the class count of
    ``--class-weights``, the model's length limit) is checked once they are known."""
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise LmClassifyError(what)

    def flag(key: str) -> str:
        return f"--{key.replace('_', '-')}"

    def is_int(v: Any) -> bool:  # numpy integers too (scikit-learn searches pass them)
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    def is_number(v: Any) -> bool:
        return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)

    for key in ("epochs", "batch_size", "grad_accum", "eval_batch_size", "eval_every", "patience", "save_every"):
        v = getattr(tc, key)
        need(v is None or (is_int(v) and v >= 1), f"{flag(key)} must be a whole number >= 1, not {v!r}")
    need(is_int(tc.seed), f"--seed must be a whole number, not {tc.seed!r}")
    v = mc.max_length
    need(v is None or (is_int(v) and v >= 2), f"--max-length must be a whole number >= 2, not {v!r}")
    lr = tc.learning_rate
    need(lr is None or (is_number(lr) and lr > 0), f"--learning-rate must be a finite number > 0, not {lr!r}")
    for key in ("weight_decay", "max_grad_norm"):
        v = getattr(tc, key)
        need(v is None or (is_number(v) and v >= 0), f"{flag(key)} must be a finite number >= 0, not {v!r}")
    w = tc.warmup_ratio
    need(w is None or (is_number(w) and 0 <= w < 1), f"--warmup-ratio must be a number in [0, 1), not {w!r}")
    for section in (mc, tc):
        for f in dataclasses.fields(section):
            choices = f.metadata.get("choices")
            v = getattr(section, f.name)
            need(not choices or v is None and f.default is None or v in choices,
                 f"{flag(f.name)} must be one of {', '.join(choices or ())}, not {v!r}")
            need(not isinstance(f.default, bool) or isinstance(v, bool),
                 f"{f.name} must be true or false, not {v!r}")
    if mc.train_layers is not None:
        parse_train_layers(mc.train_layers)
    if tc.monitor is not None:
        names = _monitor_names()
        need(isinstance(tc.monitor, str) and tc.monitor in names,
             f"--monitor {tc.monitor!r} is not a metric of any task; use one of {', '.join(names)} "
             f"(which apply depends on the task)")
    cw = tc.class_weights
    if cw is not None and cw not in ("auto", "none"):
        try:
            weights = [float(x) for x in str(cw).split(",")]
        except ValueError:
            weights = []
        need(bool(weights), f"--class-weights must be 'auto' or comma-separated numbers, not {cw!r}")
        need(all(math.isfinite(x) and x >= 0 for x in weights) and any(weights),
             f"--class-weights must be non-negative numbers, not all zero: {cw!r}")


def _monitor_names() -> list[str]:
    """Every ``val_<metric>`` some task logs (``tasks/``): what ``--monitor`` may name
    before the task is known."""
    from . import tasks  # noqa: F401 - importing the package registers every task
    from .tasks.base import REGISTRY

    keys: dict[str, None] = {"loss": None}
    for cls in REGISTRY.values():
        found = getattr(cls, "record_keys", ())
        if not isinstance(found, tuple):  # a per-instance property: the most that task can log
            found = _INSTANCE_RECORD_KEYS.get(cls.kind, ())
        keys.update(dict.fromkeys(found))
    return [f"val_{k}" for k in keys]


# Tasks whose metric names depend on the instance: single-label logs "f1" with two classes.
_INSTANCE_RECORD_KEYS = {"single": ("loss", "accuracy", "f1_macro", "f1")}


class SectionedConfig:
    """Save/load for a run config made of typed sections (``SECTIONS``)."""

    SECTIONS: dict[str, type] = {}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, source: str = "config"):
        if not isinstance(d, dict):
            raise LmClassifyError(f"{source}: expected a JSON object with sections {', '.join(cls.SECTIONS)}")
        unknown = set(d) - set(cls.SECTIONS)
        if unknown:
            raise LmClassifyError(f"{source}: unknown config section(s): {', '.join(sorted(unknown))} "
                                  f"(known: {', '.join(cls.SECTIONS)})")
        return cls(**{k: build_section(t, d.get(k) or {}, k, source) for k, t in cls.SECTIONS.items()})

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Union[str, Path]):
        """A saved ``training_config.json`` (or any JSON/YAML file holding some sections)."""
        path = Path(path)
        if not path.is_file():
            raise LmClassifyError(f"{path}: no such config file")
        try:
            text = path.read_text(encoding="utf-8")
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                d = yaml.safe_load(text)
            else:
                d = json.loads(text)
        except ImportError:
            raise LmClassifyError(f"{path}: reading YAML needs PyYAML (pip install pyyaml), or use JSON") from None
        except Exception as e:  # json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError
            raise LmClassifyError(f"{path}: not a valid config file ({str(e).splitlines()[0]})") from None
        return cls.from_dict(d, str(path))


@dataclass
class RunConfig(SectionedConfig):
    SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def build_section(section_type: type, values: dict, section: str, source: str = "config") -> Any:
    if not isinstance(values, dict):
        raise LmClassifyError(f"{source}: section {section!r} must be an object")
    names = {f.name for f in dataclasses.fields(section_type)}
    unknown = set(values) - names
    if unknown:
        raise LmClassifyError(f"{source}: unknown {section} option(s): {', '.join(sorted(unknown))} "
                              f"(known: {', '.join(sorted(names))})")
    values = dict(values)
    if isinstance(values.get("split"), list):
        values["split"] = tuple(values["split"])
    return section_type(**values)
