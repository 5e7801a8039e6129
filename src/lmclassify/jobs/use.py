"""The `evaluate` and `predict` jobs: a saved model directory on labelled data or on
inputs, for every task shape. The saved config says how the data is read (columns,
format); options given here override it."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

from ..data.conll import parse_conll
from ..data.datasets import read_dataset
from ..data.readers import _read_text, read_texts
from ..errors import LmClassifyError
from ..estimators import load
from ..estimators.artifacts import input_columns, saved_config, saved_network
from ..tasks import TOKEN

PathLike = Union[str, Path]


def load_for_use(model_dir: PathLike, device: str = "auto", quantize: Optional[str] = None,
                 batch_size: Optional[int] = None):
    """The estimator in ``model_dir``, ready for inference (optionally int8, another batch size)."""
    est = load(model_dir, device=device, quantize=quantize)
    if batch_size is not None:
        if batch_size < 1:
            raise LmClassifyError(f"--batch-size must be >= 1, not {batch_size}")
        est.train_config_.eval_batch_size = batch_size
    return est


def evaluate(model_dir: PathLike, data: PathLike, *, text_column: Optional[str] = None,
             label_column: Optional[str] = None, text_pair_column: Optional[str] = None,
             batch_size: Optional[int] = None, device: str = "auto", quantize: Optional[str] = None) -> dict:
    """Metrics of a trained model on a labelled file (a table, or CoNLL for token models)."""
    model_dir = Path(model_dir)
    tokens = saved_network(model_dir) == TOKEN
    text, pair = (None, None) if tokens else input_columns(model_dir, text_column, text_pair_column)
    label = label_column or saved_config(model_dir).data.label_column
    ex = read_dataset(data, tokens, text, label, pair)
    est = load_for_use(model_dir, device, quantize, batch_size)
    try:
        est.task_.encode_labels(ex.labels, where=ex.where)  # unseen labels: named with their line
        return est.evaluate(ex.inputs(), ex.labels)
    except LmClassifyError as e:
        raise LmClassifyError(f"{data}: {e}") from None


def read_inputs(model_dir: PathLike, path: PathLike, *, text_column: Optional[str] = None,
                text_pair_column: Optional[str] = None, conll: bool = False) -> list:
    """Inputs for ``predict`` from a file: texts (or pairs) from a table's columns or a
    .txt file's lines; for token models also a CoNLL file's word sequences."""
    model_dir = Path(model_dir)
    if conll:
        if saved_network(model_dir) != TOKEN:
            raise LmClassifyError(f"{model_dir} classifies texts; --conll input is for token models")
        return parse_conll(_read_text(Path(path)), str(path), labelled=False).tokens
    text, pair = input_columns(model_dir, text_column, text_pair_column)
    return read_texts(path, text, pair)


def predict(model_dir: PathLike, inputs: Sequence, *, batch_size: Optional[int] = None, device: str = "auto",
            quantize: Optional[str] = None) -> list[dict]:
    """One JSON-ready record per input: the task's answer (label and probabilities, labels,
    a value, or tags and entity spans with character offsets)."""
    if isinstance(inputs, str):
        raise LmClassifyError("pass a list of inputs, not a single string")
    if not len(inputs):
        raise LmClassifyError("no inputs to predict (the input is empty)")
    return load_for_use(model_dir, device, quantize, batch_size).predict_records(list(inputs))
