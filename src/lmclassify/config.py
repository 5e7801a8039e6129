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
from .networks import NETWORKS, SEQUENCE, TOKEN


def opt(default: Any = None, help: str = "", *, choices: Optional[tuple] = None, type: Any = None,
        flag: Optional[str] = None, applies: tuple = NETWORKS, cli: bool = True, aliases: tuple = ()) -> Any:
    """A config field with what the CLI and the estimators need to know about it."""
    return field(default=default, metadata={"help": help, "choices": choices, "type": type, "flag": flag,
                                            "applies": applies, "cli": cli, "aliases": aliases})


def parse_train_layers(value: Union[str, int]) -> Union[int, str]:
    """`--train-layers` accepts N >= 0, 'all', 'head' (= 0 blocks), 'auto' (per model kind) or
    'lora' (adapters on the top --lora-layers blocks, ``models/adapters.py``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    elif value in ("all", "head", "auto", "lora"):
        return value
    else:
        try:
            n = int(value)
        except (TypeError, ValueError):
            raise LmClassifyError(f"--train-layers must be a number, 'all', 'head', 'auto' or 'lora', "
                                  f"not {value!r}") from None
    if n < 0:
        raise LmClassifyError(f"--train-layers must be >= 0, not {n}")
    return n


@dataclass
class ModelConfig:
    name: Optional[str] = opt(None, "built-in name (smollm2-135m, minilm-l6), local HF directory, .gguf file or "
                                    "hub id (default: the recipe's model, else smollm2-135m for text and "
                                    "minilm-l6 for token tasks)", flag="--model")
    train_layers: Union[int, str, None] = opt(
        None, "N last blocks (+ final norm + head), 'all', 'head', 'auto' or 'lora' (LoRA adapters, see --lora-*; "
              "default: 1 for decoders, every block for encoders, 2 for token tasks)", type=parse_train_layers)
    # --train-layers lora (models/adapters.py): the base weights stay frozen; head and final norm train in full.
    lora_r: int = opt(8, "--train-layers lora: the adapters' rank", type=int)
    lora_alpha: float = opt(16.0, "--train-layers lora: the update is scaled by alpha / r", type=float)
    # Default 0: a dropout > 0 keeps a copy of every adapted layer's input for the backward pass
    # (SmolLM2-135M, 10 steps of SMS spam: peak RSS 3,293 MB at 0.05, 2,778 MB at 0).
    lora_dropout: float = opt(0.0, "--train-layers lora: dropout on the adapters' input", type=float)
    lora_targets: Optional[str] = opt(None, "--train-layers lora: comma-separated Linear names inside a block "
                                            "(default: every one: q/k/v/o + gate/up/down for Llama, "
                                            "c_attn/c_proj/c_fc for GPT-2, query/key/value/dense for BERT)")
    lora_layers: Optional[int] = opt(None, "--train-layers lora: adapters on the top K blocks only; the blocks "
                                           "below are frozen and cached (default: every block)", type=int)
    save_adapter: bool = opt(False, "--train-layers lora: also write the peft adapter (head included) into "
                                    "OUTPUT/adapter/; the model itself is saved merged either way")
    pooling: str = opt("auto", "auto: last for decoders, cls for encoders (mean under --head logistic)",
                       choices=("auto", "last", "cls", "mean", "max", "attention"), applies=(SEQUENCE,))
    embedding_norm: str = opt("auto", "l2: divide the pooled vector by its length before the head, as "
                                      "sentence-transformers encoders (all-MiniLM-L6-v2) end; auto: l2 for an "
                                      "encoder's logistic head (--head logistic, --method setfit: fitted on the "
                                      "unit vectors as SetFit does), none otherwise",
                              choices=("auto", "l2", "none"), applies=(SEQUENCE,))
    head: str = opt("linear", "mlp: Linear, GELU, dropout, Linear (lmclassify's own head); logistic: scikit-learn's "
                              "logistic regression on the pooled frozen features, saved as a Linear head "
                              "(implies --train-layers head unless --method setfit; single-label)",
                    choices=("linear", "mlp", "logistic"))
    head_bias: bool = opt(False, "add a bias to a decoder's linear head", applies=(SEQUENCE,))
    crf: bool = opt(False, "token tasks: a CRF over the word scores (learned transitions, Viterbi)",
                    applies=(TOKEN,))
    task: str = opt("auto", "auto (default): CoNLL files -> token; lists or separated labels -> multi; "
                            "fractional numbers -> regression; else single",
                    choices=("auto", "single", "multi", "regression", "token"), applies=(SEQUENCE,))
    pair_mode: str = opt("joint", "text pairs: joint (one sequence) or siamese (each text alone, head on "
                                  "[u, v, |u-v|])", choices=("joint", "siamese"), applies=(SEQUENCE,))
    max_length: Optional[int] = opt(None, "tokens per text (pair, sentence); longer ones are truncated "
                                          "(default 256, 128 for token tasks; clamped to the model's limit)",
                                    type=int)
    long_text: str = opt("truncate", "texts past --max-length: truncate (keep the start), head-tail (the first "
                                     "quarter and last three quarters of the budget) or chunk (overlapping windows, "
                                     "one prediction from their logits)", choices=("truncate", "head-tail", "chunk"),
                         applies=(SEQUENCE,))
    stride: Optional[int] = opt(None, "tokens shared by neighbouring windows of a long text (--long-text chunk; "
                                      "token tasks always tag long sentences in windows); default --max-length / 8",
                                type=int)
    chunk_aggregate: str = opt("mean", "--long-text chunk: a text's logits are the mean or the max of its windows'",
                               choices=("mean", "max"), applies=(SEQUENCE,))
    input_template: str = opt("auto", "auto: decoders with a chat template read each text as a user turn",
                              choices=("auto", "chat", "none"), applies=(SEQUENCE,))


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
    feature_precision: Optional[str] = opt(None, "int8: the frozen blocks compute the training split's cached "
                                                 "states in int8 (CPU; 2.5x faster on SMS spam's training split; "
                                                 "fp32 where no int8 kernel wins). bf16: embeddings and frozen "
                                                 "blocks in bf16, where the CPU does bf16 natively (AMX). auto: of "
                                                 "those that beat fp32 on this CPU (timed once), bf16 with AMX, else "
                                                 "int8; fp32 where neither does. "
                                                 "Validation and test stay fp32, so the reported metrics are the "
                                                 "saved model's. Default: auto for decoders (int8: SMS spam +0.33 "
                                                 "points, SST-2 +0.04 over 3 seeds; bf16: 0.00 and -0.26 over 3: "
                                                 "bench/results/feature_precision*.md), fp32 otherwise",
                                           choices=("fp32", "int8", "bf16", "auto"))
    gradient_checkpointing: bool = opt(False, "keep only each trainable block's input and recompute the rest in "
                                              "the backward pass: much less training memory when many blocks "
                                              "train (LoRA or all), about a third more compute")
    eval_batch_size: int = opt(64, "texts per batch in evaluation and prediction", type=int)
    device: str = opt("auto", "auto, cpu, cuda, cuda:1, mps")
    compile: bool = opt(False, "torch.compile the training forward: worth its start-up cost on a GPU or a long run")
    method: str = opt("finetune", "finetune: the training loop on the labels; setfit (few labels): contrastive "
                                  "pair fine-tuning of the encoder (cosine loss over same/different-label pairs), "
                                  "then --head logistic", choices=("finetune", "setfit"), applies=(SEQUENCE,))
    pair_iterations: int = opt(20, "--method setfit: R; each text gets R same-label and R other-label partners "
                                   "(2 R N pairs per epoch)", type=int, applies=(SEQUENCE,))
    logistic_c: float = opt(1.0, "--head logistic: inverse L2 strength C of the logistic regression", type=float,
                            applies=(SEQUENCE,))
    logistic_standardize: bool = opt(True, "--head logistic: z-score the features first (folded into the saved "
                                           "head)", applies=(SEQUENCE,))
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
                              "learning_rate": 5e-5, "weight_decay": 0.1, "schedule": "constant", "warmup_ratio": 0.0,
                              "feature_precision": "auto"},
    ("sequence", "encoder"): {"train_layers": "auto", "max_length": 256, "epochs": 3, "batch_size": 32,
                              "learning_rate": 1e-4, "weight_decay": 0.01, "schedule": "linear", "warmup_ratio": 0.1},
    ("token", "encoder"): {"train_layers": 2, "max_length": 128, "epochs": 3, "batch_size": 16,
                           "learning_rate": 2e-4, "weight_decay": 0.01, "schedule": "linear", "warmup_ratio": 0.1},
}
FAMILY_DEFAULTS[("token", "decoder")] = FAMILY_DEFAULTS[("token", "encoder")]
# Continued pretraining (``lmclassify pretrain``, network "lm"): every weight trains, one
# pass over the texts, a small learning rate so the backbone adapts without forgetting.
FAMILY_DEFAULTS[("lm", "encoder")] = {"max_length": 128, "epochs": 1, "batch_size": 32, "learning_rate": 1e-4,
                                      "weight_decay": 0.01, "schedule": "linear", "warmup_ratio": 0.06}
FAMILY_DEFAULTS[("lm", "decoder")] = {"max_length": 256, "epochs": 1, "batch_size": 8, "learning_rate": 5e-5,
                                      "weight_decay": 0.01, "schedule": "linear", "warmup_ratio": 0.06}


def fill_defaults(mc: ModelConfig, tc: TrainConfig, network: str, family: str) -> list[str]:
    """Fill the options left None from the family's defaults (in place); returns their names."""
    filled = []
    for key, value in FAMILY_DEFAULTS[(network, family)].items():
        section = mc if hasattr(mc, key) else tc
        if getattr(section, key) is None:
            setattr(section, key, value)
            filled.append(key)
    if tc.feature_precision is None:  # int8 and bf16 caches were measured on decoders only
        tc.feature_precision = "fp32"
        filled.append("feature_precision")
    if mc.train_layers == "lora" and "learning_rate" in filled:
        tc.learning_rate *= LORA_LR_FACTOR
    return filled


# LoRA's update starts at zero and is low-rank: it wants ~10x the full fine-tune's learning
# rate (Schulman et al., "LoRA Without Regret", Thinking Machines, 2025). Applied to the
# family default only: a learning rate given, or a recipe's, is kept.
LORA_LR_FACTOR = 10.0


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
    need(mc.stride is None or (is_int(mc.stride) and mc.stride >= 0),
         f"--stride must be a whole number >= 0, not {mc.stride!r}")
    need(is_int(mc.lora_r) and mc.lora_r >= 1, f"--lora-r must be a whole number >= 1, not {mc.lora_r!r}")
    need(is_number(mc.lora_alpha) and mc.lora_alpha > 0, f"--lora-alpha must be a number > 0, not {mc.lora_alpha!r}")
    need(is_number(mc.lora_dropout) and 0 <= mc.lora_dropout < 1,
         f"--lora-dropout must be a number in [0, 1), not {mc.lora_dropout!r}")
    need(mc.lora_layers is None or (is_int(mc.lora_layers) and mc.lora_layers >= 1),
         f"--lora-layers must be a whole number >= 1, not {mc.lora_layers!r}")
    need(mc.lora_targets is None or (isinstance(mc.lora_targets, str) and mc.lora_targets.strip(", ") != ""),
         f"--lora-targets must name Linear layers, comma-separated, not {mc.lora_targets!r}")
    for key in ("lora_layers", "lora_targets", "save_adapter"):
        need(not getattr(mc, key) or mc.train_layers == "lora",
             f"--{key.replace('_', '-')} applies to --train-layers lora only")
    lr = tc.learning_rate
    need(lr is None or (is_number(lr) and lr > 0), f"--learning-rate must be a finite number > 0, not {lr!r}")
    for key in ("weight_decay", "max_grad_norm"):
        v = getattr(tc, key)
        need(v is None or (is_number(v) and v >= 0), f"{flag(key)} must be a finite number >= 0, not {v!r}")
    need(is_int(tc.pair_iterations) and tc.pair_iterations >= 1,
         f"--pair-iterations must be a whole number >= 1, not {tc.pair_iterations!r}")
    need(is_number(tc.logistic_c) and tc.logistic_c > 0, f"--logistic-c must be a finite number > 0, not "
                                                          f"{tc.logistic_c!r}")
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


# ---- continued pretraining (``lmclassify pretrain``) ------------------------------------

@dataclass
class PretrainConfig:
    objective: str = opt("auto", "auto: masked LM for encoders, causal (next-token) LM for decoders",
                         choices=("auto", "mlm", "causal"), applies=())
    mlm_probability: float = opt(0.15, "masked LM: the share of tokens chosen; of those, 8 in 10 become [MASK], "
                                       "1 in 10 a random token, 1 in 10 stay (the loss is on the chosen ones)",
                                 type=float, applies=())
    whole_word_mask: bool = opt(False, "masked LM: choose whole words (all their pieces), as transformers' "
                                       "DataCollatorForLanguageModeling does: every chosen piece becomes [MASK]",
                                applies=())

    def check(self) -> None:
        p = self.mlm_probability
        if not (isinstance(p, numbers.Real) and not isinstance(p, bool) and 0 < p < 1):
            raise LmClassifyError(f"--mlm-probability must be a number in (0, 1), not {p!r}")
        if self.objective not in ("auto", "mlm", "causal"):
            raise LmClassifyError(f"--objective must be one of auto, mlm, causal, not {self.objective!r}")
        if not isinstance(self.whole_word_mask, bool):
            raise LmClassifyError(f"whole_word_mask must be true or false, not {self.whole_word_mask!r}")


# The model / data / train options `lmclassify pretrain` reads (the rest are a classifier's).
PRETRAIN_OPTIONS = {
    "model": ("name", "max_length"),
    "data": ("recipe", "data", "train", "validation", "text_column", "split"),
    "train": ("epochs", "batch_size", "learning_rate", "weight_decay", "schedule", "warmup_ratio", "grad_accum",
              "max_grad_norm", "seed", "eval_every", "patience", "monitor", "keep_best", "eval_batch_size",
              "device", "compile", "gradient_checkpointing", "save_every", "report_to"),
}


@dataclass
class PretrainRunConfig(SectionedConfig):
    """A pretraining run: the shared sections (only ``PRETRAIN_OPTIONS`` of them used) and
    the objective's own; saved as ``pretrain_config.json`` beside the weights."""

    SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig, "pretrain": PretrainConfig}

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)


# ---- commands that use a model without training it (``embed``, ``generate``) ----------
# Their other options (--max-length, --input-template, --text-column, --device, --seed, ...)
# are the fields above, taken by name, so each option is still declared once.

@dataclass
class EmbedConfig:
    pooling: str = opt("auto", "how token vectors become one vector per text; auto: a fine-tuned model's own "
                               "pooling, else mean for encoders (what sentence encoders are trained with) and "
                               "last for decoders (what lmclassify's classifier reads)",
                       choices=("auto", "mean", "cls", "last", "max"))
    standardize: bool = opt(False, "z-score every dimension with the data's mean and standard deviation (saved "
                                   "beside the output as OUTPUT.stats.json), or with --stats")
    stats: Optional[str] = opt(None, "a stats JSON file written by an earlier --standardize: apply its mean and "
                                     "std instead of fitting them (implies --standardize)")
    report: bool = opt(False, "print the anisotropy (mean cosine of random pairs) before and after "
                              "standardisation, and same- vs different-label cosines when the data has labels")
    report_pairs: int = opt(10000, "random pairs the --report averages over", type=int)
    batch_size: int = opt(32, "texts per forward pass", type=int)

    def check(self) -> None:
        for key in ("report_pairs", "batch_size"):
            v = getattr(self, key)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise LmClassifyError(f"--{key.replace('_', '-')} must be a whole number >= 1, not {v!r}")


@dataclass
class GenerateConfig:
    prompt: Optional[str] = opt(None, "the text to continue (a chat model reads it as a user turn; see "
                                      "--input-template)")
    max_new_tokens: int = opt(40, "tokens to generate at most", type=int)
    temperature: float = opt(0.0, "0: greedy (the same text every time); > 0: sample, seeded by --seed", type=float)

    def check(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt:
            raise LmClassifyError("give a prompt to continue (--prompt TEXT)")
        v = self.max_new_tokens
        if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            raise LmClassifyError(f"--max-new-tokens must be a whole number >= 1, not {v!r}")
        t = self.temperature
        if not (isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) and t >= 0):
            raise LmClassifyError(f"--temperature must be a finite number >= 0, not {t!r}")
