"""The estimator family's shared body: the scikit-learn contract over the one pipeline.

``__init__`` only stores hyper-parameters, and its signature is derived from the config
dataclasses (``config.py``), so ``get_params``/``set_params``/``sklearn.base.clone`` see
exactly the options that will be trained with. ``fit`` resolves what was left unset
(model family defaults, the task's monitor), builds the network for the task, encodes,
caches the frozen prefix, runs the one loop and tunes the task's decision rules; learned
state lives in ``trailing_`` attributes. Subclasses say how inputs become ``Encoded``
and how outputs become predictions.
"""
from __future__ import annotations

import copy
import dataclasses
import inspect
import time
import warnings
from pathlib import Path
from typing import Any, ClassVar, Optional, Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator

from ..config import DataConfig, ModelConfig, TrainConfig, check_options, fill_defaults
from ..data.batching import Encoded
from ..errors import LmClassifyError
from ..models.adapters import lora_settings, merge_adapters
from ..models.checkpointing import checkpoint_activations
from ..models.load import build_network, model_family
from ..models.resolve import DEFAULT_DECODER
from ..tasks import TOKEN, Task
from ..training import distributed
from ..training.device import pick_device
from ..training.feature_cache import FP32, build_features, resolve_precision
from ..training.logistic_head import fit_logistic_head, method_defaults, uses_logistic_head
from ..training.loop import FitResult, fit, predict_logits

# int8's fp32 second look covers margins within this many times the most int8 moved one on
# the calibration texts. SMS spam: a 2.2-logit threshold, 3.7 % of texts rerun, and the 4
# labels int8 had flipped (int8 margins <= 0.45) all restored; SST-2: 0.11, 1.7 % rerun,
# 1 flip of 1,821 left (int8 moved it 0.32).
RECHECK_FACTOR = 3.0


def _param_name(f: dataclasses.Field) -> str:
    flag = f.metadata.get("flag")
    return flag.lstrip("-").replace("-", "_") if flag else f.name


def estimator_params(network: str) -> list[tuple[str, str, dataclasses.Field]]:
    """(parameter, section, field) for every model/train option that applies to ``network``."""
    out = []
    for section, cls in (("model", ModelConfig), ("train", TrainConfig)):
        for f in dataclasses.fields(cls):
            if network in f.metadata.get("applies", (network,)):
                out.append((_param_name(f), section, f))
    return out


def _init_with_signature(params: list[tuple[str, Any]]):
    """An ``__init__`` that stores keyword arguments, with a real signature for scikit-learn."""
    names = [n for n, _ in params]

    def __init__(self, *args, **kwargs):
        bound = __init__.__signature__.bind(self, *args, **kwargs)
        bound.apply_defaults()
        for name in names:
            setattr(self, name, bound.arguments[name])

    first, rest = params[0], params[1:]
    sig = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
           inspect.Parameter(first[0], inspect.Parameter.POSITIONAL_OR_KEYWORD, default=first[1])]
    sig += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d) for n, d in rest]
    __init__.__signature__ = inspect.Signature(sig)
    return __init__


class LMEstimator(BaseEstimator):
    """Base of ``TextClassifier`` and ``TokenClassifier``; see the module docstring."""

    NETWORK: ClassVar[str] = ""
    DEFAULT_MODEL: ClassVar[str] = DEFAULT_DECODER
    EXTRA_PARAMS: ClassVar[tuple[tuple[str, Any], ...]] = (("progress", True),)
    # Input facts every estimator answers (only text pairs set them); class defaults, not fit state.
    pairs_: bool = False
    pair_template_: Optional[str] = None

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if cls.NETWORK:
            params = [(n, f.default) for n, _, f in estimator_params(cls.NETWORK)] + list(cls.EXTRA_PARAMS)
            cls.__init__ = _init_with_signature(params)

    # ---- configuration -------------------------------------------------------------
    def configs(self) -> tuple[ModelConfig, TrainConfig]:
        """The run's model and train sections, from the parameters (unset options None)."""
        values: dict[str, dict] = {"model": {}, "train": {}}
        for name, section, f in estimator_params(self.NETWORK):
            values[section][f.name] = getattr(self, name)
        return ModelConfig(**values["model"]), TrainConfig(**values["train"])

    def data_config(self) -> DataConfig:
        """The data options the estimator itself uses (saved with the model)."""
        return DataConfig()

    def set_data_config(self, data: DataConfig) -> "LMEstimator":
        """Take the data options the estimator uses (positive label, label separator)."""
        return self

    @classmethod
    def from_config(cls, mc: ModelConfig, tc: TrainConfig, data: Optional[DataConfig] = None,
                    progress: bool = True) -> "LMEstimator":
        """An unfitted estimator whose parameters are these config sections."""
        est = cls().set_config(mc, tc)
        est.progress = progress
        return est.set_data_config(data or DataConfig())

    def set_config(self, mc: ModelConfig, tc: TrainConfig) -> "LMEstimator":
        """Parameters from config sections: the inverse of ``configs``."""
        for name, section, f in estimator_params(self.NETWORK):
            setattr(self, name, getattr(mc if section == "model" else tc, f.name))
        return self

    # ---- what subclasses provide -----------------------------------------------------
    def _make_task(self, y: Sequence, mc: ModelConfig, tc: TrainConfig) -> Task:
        raise NotImplementedError

    def _prepare(self, X: Sequence) -> None:
        """Learn input facts from the training inputs (text pairs); most have none."""

    def _encode(self, X: Sequence, y: Optional[Sequence] = None) -> Encoded:
        raise NotImplementedError

    def _network_options(self, mc: ModelConfig) -> dict:
        raise NotImplementedError

    def _restored(self, meta: dict, data: DataConfig) -> None:
        """Take back what ``save`` kept beyond the model and train sections."""

    def _init_network(self, y: Sequence) -> None:
        """Start task-specific parts of the network from the training labels; most have none."""

    def _built(self, mc: ModelConfig) -> None:
        """Record what building the network resolved (e.g. pooling 'auto'); most have nothing."""

    def _evaluation_extras(self, enc: Encoded) -> dict:
        return {}

    # ---- fitting -----------------------------------------------------------------
    def fit(self, X: Sequence, y: Sequence, validation: Optional[tuple] = None, log=None,
            feature_dir: Optional[Path] = None, **loop) -> "LMEstimator":
        """Train on inputs ``X`` and labels ``y``; ``validation`` = (X_val, y_val) drives
        early stopping, the best weights and (multi-label) thresholds. Returns self.
        ``feature_dir`` keeps the feature cache on disk there (a resumed run reuses it);
        ``loop`` passes checkpoints / resume / stop through to the training loop."""
        mc, tc, task = self._resolve(X, y)
        torch.manual_seed(tc.seed)
        np.random.seed(tc.seed)
        self.device_ = distributed.device_for_rank(pick_device(tc.device))
        distributed.init(self.device_)  # under torchrun: join the other processes (no-op otherwise)
        self._build(mc, tc, task, y)
        if self.progress and distributed.is_main():
            trainable, total = self.parameter_counts_["trainable"], self.parameter_counts_["total"]
            print(f"task: {self._describe()}; model {mc.name} ({self.family_}); trainable parameters: "
                  f"{trainable:,} / {total:,} ({100 * trainable / total:.2f} %)")
            print("options: " + ", ".join(f"{k}={getattr(mc if hasattr(mc, k) else tc, k)}" for k in
                                          ("train_layers", "max_length", "epochs", "batch_size", "learning_rate",
                                           "weight_decay", "schedule", "warmup_ratio", "monitor")))
        t0 = time.perf_counter()
        self._encoded = {"train": self._encode(X, y)}
        if validation is not None:
            self._encoded["validation"] = self._encode(*validation)
        self.truncated_ = {k: e.truncated for k, e in self._encoded.items()}
        self.feature_cache_ = bool(tc.feature_cache and self.module_.cacheable)
        # what the run really does (int8 needs a CPU and a kernel that wins), decided once, as saved
        prefix = resolve_precision(self.module_, tc.feature_precision, self.device_) if self.feature_cache_ else FP32
        tc.feature_precision = prefix.name
        if self.feature_cache_:
            for name, enc in self._encoded.items():
                build_features(self.module_, enc, self.pad_id, self.device_, desc=f"cache {name}",
                               spill_dir=feature_dir,  # int8 only where it cannot touch the metrics
                               precision=prefix if name == "train" else FP32)
        val = self._encoded.get("validation")
        # --head logistic (and --method setfit): scikit-learn fits the head (training/logistic_head.py)
        fit_head = fit_logistic_head if uses_logistic_head(mc) else fit
        self.fit_result_: FitResult = fit_head(self.module_, task, self._encoded["train"], val, tc, self.pad_id,
                                               self.device_, log=log, **loop)
        # Decision rules tuned on validation (multi-label thresholds); None for most tasks.
        self.calibration_ = None if val is None else task.calibrate(self._outputs(val), val.labels)
        self.train_seconds_ = time.perf_counter() - t0
        return self

    def _resolve(self, X: Sequence, y: Sequence) -> tuple[ModelConfig, TrainConfig, Task]:
        """The run's options with nothing left unset, checked before any model is loaded,
        and the task fitted on the training labels."""
        mc, tc = self.configs()
        check_options(mc, tc)
        if len(X) != len(y):
            raise LmClassifyError(f"{len(X)} inputs but {len(y)} labels")
        task = self._make_task(y, mc, tc)
        if task.network != self.NETWORK:
            raise LmClassifyError(f"a {task.kind} task needs "
                                  f"{'TokenClassifier' if task.network == TOKEN else 'TextClassifier'}, "
                                  f"not {type(self).__name__}")
        mc.name = mc.name or self.DEFAULT_MODEL
        family = model_family(mc.name)
        self.defaulted_ = method_defaults(mc, tc, task.kind, family) + fill_defaults(mc, tc, task.network, family)
        tc.monitor = tc.monitor or task.default_monitor()
        task.check_monitor(tc.monitor)
        self._prepare(X)
        return mc, tc, task

    def _build(self, mc: ModelConfig, tc: TrainConfig, task: Task, y: Sequence) -> None:
        """A fresh network for the task; what building it resolves goes back into ``mc``."""
        built = build_network(task.network, mc.name, task.id2label(), train_layers=mc.train_layers,
                              problem_type=task.name if task.network != TOKEN else None, seed=tc.seed,
                              lora=lora_settings(mc), **self._network_options(mc))
        self.module_, self.tokenizer_, self.input_template_ = built.network, built.tokenizer, built.input_template
        self.family_ = built.family
        if built.position_limit and mc.max_length > built.position_limit:
            if "max_length" not in self.defaulted_:  # a default that does not fit is no news
                warnings.warn(f"--max-length {mc.max_length} is past {mc.name}'s limit of "
                              f"{built.position_limit} tokens; using {built.position_limit}", stacklevel=3)
            mc.max_length = built.position_limit
        mc.train_layers = self.module_.train_layers
        self._built(mc)
        self.model_config_, self.train_config_ = mc, tc
        self.task_ = task
        task.attach(self.module_)
        self._init_network(y)
        self.classes_ = task.classes
        self.module_.to(self.device_)
        if tc.gradient_checkpointing:
            checkpoint_activations(self.module_.hf)
        trainable, total = self.module_.parameter_counts()
        self.parameter_counts_ = {"trainable": trainable, "total": total}

    def _describe(self) -> str:
        return self.task_.kind

    @property
    def pad_id(self) -> int:
        return self.tokenizer_.pad_token_id

    # ---- using ---------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "module_"):
            raise LmClassifyError(f"this {type(self).__name__} is not fitted yet: call fit() or lmclassify.load(dir)")

    def _outputs(self, enc: Encoded) -> torch.Tensor:
        out = predict_logits(self.module_, self.task_, enc, self.pad_id, self.device_,
                             self.train_config_.eval_batch_size, bf16=self.quantized_ == "bf16")
        exact = getattr(self, "exact_module_", None)
        if exact is not None and enc.windows is None:
            # int8's second look: near-ties, where its rounding could flip a label, run in fp32
            near = (self.task_.margins(out) < self.recheck_margin_).nonzero().squeeze(1).tolist()
            if near:
                again = predict_logits(exact, self.task_, enc.rows(near), self.pad_id, self.device_,
                                       self.train_config_.eval_batch_size)
                with torch.inference_mode():  # ``out`` is an inference tensor
                    out[near] = again.to(out.dtype)
        return out

    def decision_function(self, X: Sequence) -> torch.Tensor:
        """The network's raw outputs (logits) for ``X``."""
        self._check_fitted()
        return self._outputs(self._encode(X))

    def evaluate(self, X: Sequence, y: Sequence, split: Optional[str] = None) -> dict:
        """Metrics on labelled inputs. Splits seen in ``fit`` reuse their encoding and
        cached features. ``truncated`` counts inputs cut by max_length."""
        self._check_fitted()
        enc = getattr(self, "_encoded", {}).get(split) if split else None
        if enc is None:
            enc = self._encode(X, y)
            if getattr(self, "feature_cache_", False):
                build_features(self.module_, enc, self.pad_id, self.device_, desc=f"cache {split or 'eval'}")
        m = self.task_.metrics(self._outputs(enc), enc.labels)
        m.update(self._evaluation_extras(enc))
        m["truncated"] = enc.truncated
        m["over_max_length"] = enc.over_length  # cut, or read in windows (--long-text)
        return m

    def score(self, X: Sequence, y: Sequence) -> float:
        """scikit-learn's score: the task's main metric (accuracy, macro F1, Pearson r,
        entity F1); higher is better."""
        metrics = self.evaluate(X, y)
        return self.task_.score(metrics)

    # ---- persistence -------------------------------------------------------------
    def save(self, directory, **extra) -> Path:
        """Write the model directory (see ``estimators/artifacts.py``)."""
        from .artifacts import save_model_dir

        self._check_fitted()
        if self.quantized_:
            raise LmClassifyError(f"a {self.quantized_} model is for inference only; save the model before "
                                  f"quantize()")
        return save_model_dir(Path(directory), self, **extra)

    @classmethod
    def load(cls, directory, device: str = "auto", quantize: Optional[str] = None) -> "LMEstimator":
        """Load a saved model directory of this estimator's kind; ``quantize="int8"`` or
        ``"bf16"`` makes it a model for CPU inference in that precision (see ``quantize``)."""
        from .artifacts import restore

        est = restore(cls, Path(directory), pick_device(device))
        if quantize:
            est.quantize(quantize)
        return est

    def quantize(self, kind: str = "int8", recheck: bool = True) -> "LMEstimator":
        """CPU inference in ``int8`` or ``bf16``, every Linear/Conv1D but the head.

        int8: int8 weights and per-token int8 activations (``models/int8.py`` says why not
        torch's dynamic quantization), on the integer kernel this CPU runs fastest
        (``models/int8_kernels.py``); a few input columns per layer stay fp32, found on
        built-in calibration texts (``models/calibration_texts.py``). bf16: bf16 weights
        under CPU autocast, where the CPU multiplies bf16 natively (``models/bf16.py``).
        Where neither beats fp32 the model stays fp32 and a one-line warning says so;
        ``int8_kernel_`` / ``bf16_choice_`` record the choice.

        ``recheck`` (int8, single-label models): keep the fp32 network too (memory: fp32 plus
        int8) and run in it the few texts whose top-two margin int8 leaves within
        ``recheck_margin_`` logits: ``RECHECK_FACTOR`` x the most int8 moved a margin on the
        calibration texts. Labels then match fp32 unless int8 moves a margin that far."""
        from ..models.int8 import kernel_for, linear_targets, outlier_columns, quantize_int8

        self._check_fitted()
        if kind not in ("int8", "bf16"):
            raise LmClassifyError(f"unknown quantization {kind!r}; choose int8 or bf16")
        if self.device_.type != "cpu":
            raise LmClassifyError(f"{kind} quantization runs on the CPU only; use --device cpu")
        done = self.quantized_
        if done == kind:
            return self
        if done is not None:
            raise LmClassifyError(f"this model already runs in {done}; load it again to quantize it to {kind}")
        merge_adapters(self.module_)  # LoRA: one matmul per layer on the merged weights
        keep = {id(m) for m in self.module_.head.modules()}
        targets = linear_targets(self.module_, keep)
        if not targets:
            raise LmClassifyError(f"{kind}: this {self.module_.hf.config.model_type} model has no linear layers "
                                  f"to quantize")
        if kind == "bf16":
            return self._bf16(targets, keep)
        self.int8_kernel_ = kernel_for(targets)
        if self.int8_kernel_.kernel is None:
            warnings.warn(f"int8: keeping fp32, {self.int8_kernel_.describe()}", stacklevel=2)
            return self
        fp32 = []
        columns = outlier_columns([c for _, _, c in targets], lambda: fp32.append(self._run_calibration()))
        exact = copy.deepcopy(self.module_) if recheck and self.task_.margins(fp32[0]) is not None else None
        quantize_int8(self.module_, keep=keep, kernel=self.int8_kernel_.kernel, columns=columns)
        if exact is not None:
            # how far int8 moved the calibration texts' margins sets how close a call must be
            # to get a second look in fp32 (``_outputs``)
            moved = self._run_calibration() - fp32[0]
            self.recheck_margin_ = RECHECK_FACTOR * float((moved.amax(-1) - moved.amin(-1)).max())
            self.exact_module_ = exact
        return self

    def _bf16(self, targets: list, keep: set[int]) -> "LMEstimator":
        from ..models.bf16 import bf16_for, bf16_linears

        self.bf16_choice_ = bf16_for(targets)
        if self.bf16_choice_.kernel is None:
            warnings.warn(f"bf16: keeping fp32, {self.bf16_choice_.describe()}", stacklevel=3)
            return self
        bf16_linears(self.module_, keep)
        return self

    def _run_calibration(self) -> torch.Tensor:
        """The network's outputs for the calibration texts, run one at a time (padding would
        count as input)."""
        from ..models.calibration_texts import CALIBRATION_TEXTS

        enc = self._encode(self._calibration_inputs(list(CALIBRATION_TEXTS)))
        return predict_logits(self.module_, self.task_, enc, self.pad_id, self.device_, batch_size=1)

    def _calibration_inputs(self, texts: list[str]) -> list:
        """``texts`` in the form ``predict`` takes."""
        return texts

    @property
    def quantized_(self) -> Optional[str]:
        """What the network runs in, if not fp32: "int8" or "bf16" (after ``quantize``)."""
        from ..models.bf16 import is_bf16
        from ..models.int8 import Int8Linear

        if any(isinstance(m, Int8Linear) for m in self.module_.modules()):
            return "int8"
        return "bf16" if is_bf16(self.module_) else None
