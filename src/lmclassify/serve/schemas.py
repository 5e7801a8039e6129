"""Request and response bodies (they are also the OpenAPI docs at ``/docs``), and the
checks that turn a request's inputs into what ``predict_records`` takes for one model."""
from __future__ import annotations

from typing import Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, StrictBool, StrictStr

from ..tasks import TOKEN
from .batcher import ApiError


class PairInput(BaseModel):
    """One input of a pair model."""
    model_config = ConfigDict(extra="forbid")
    text: StrictStr
    text_pair: StrictStr


class PredictRequest(BaseModel):
    """``POST /v1/predict``: texts (or pairs) for one model."""
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"inputs": ["WINNER!! Claim your prize now", "see you at 6?"]}]})
    model: Optional[StrictStr] = Field(None, description="a served model's name; may be left out when one is served")
    inputs: list[Union[StrictStr, PairInput]] = Field(
        description="texts, or {text, text_pair} objects for pair models; token models split texts on whitespace")
    timeout_ms: Optional[PositiveInt] = Field(
        None, description="this request's time budget (at most the server's --timeout-ms): 504 when it runs out")


class PredictResponse(BaseModel):
    model: str
    predictions: list[dict[str, Any]] = Field(
        description="one record per input, as `lmclassify predict` prints: text (and text_pair), then label/score/"
                    "probabilities, labels/probabilities, value, or tokens/tags/entities")


class TeiRequest(BaseModel):
    """``POST /predict`` in text-embeddings-inference's shape."""
    model_config = ConfigDict(json_schema_extra={"examples": [{"inputs": "I like you."},
                                                              {"inputs": [["I like you."], ["a", "pair"]]}]})
    inputs: Union[StrictStr, list[StrictStr], list[list[StrictStr]]] = Field(
        description="a string, a pair [string, string], or a batch [[string], [string, string], ...]")
    truncate: StrictBool = Field(False, description="accepted for compatibility: long texts are always read "
                                                    "as the model was trained (truncated, or in windows)")
    raw_scores: StrictBool = Field(False, description="not supported: scores are probabilities")
    model: Optional[StrictStr] = Field(None, description="lmclassify's addition: a served model's name")


class TeiPrediction(BaseModel):
    score: float
    label: str


class ErrorBody(BaseModel):
    error: str


class ModelInfo(BaseModel):
    name: str
    task: str = Field(description="single, multi, regression or token")
    labels: list[str]
    pairs: bool = Field(description="the model classifies (text, text_pair) pairs")
    base_model: str
    max_length: int = Field(description="longer inputs are truncated to this many tokens, or read in windows "
                                        "of it (the model's --long-text)")
    quantize: Optional[str] = Field(description="int8 or bf16 when the model runs in it; null in fp32 (also when "
                                                "--quantize found nothing faster than fp32 here)")
    int8_kernel: Optional[str] = Field(description="the integer matmul int8 runs on this CPU (int_mm, fbgemm, avx2)")


def describe(name: str, est) -> dict:
    """What ``GET /v1/models`` says about one model: what actually runs, not what was asked."""
    running = getattr(est, "quantized_", None)
    choice = getattr(est, "int8_kernel_", None)
    kernel = choice.kernel if running == "int8" and choice is not None else None
    return ModelInfo(name=name, task=est.task_.kind, labels=[str(c) for c in est.task_.classes], pairs=bool(est.pairs_),
                     base_model=str(est.model_config_.name), max_length=int(est.model_config_.max_length),
                     quantize=running, int8_kernel=kernel).model_dump()


def model_inputs(name: str, est, inputs: list) -> list:
    """The request's inputs as ``predict_records`` takes them: texts, or (text, text_pair)
    tuples for a pair model; a 422 for the wrong shape, before anything is queued."""
    if not inputs:
        raise ApiError(422, "inputs is empty: send at least one text")
    pairs = [isinstance(x, PairInput) for x in inputs]
    if est.task_.network == TOKEN:
        if any(pairs):
            raise ApiError(422, f"{name} tags the words of single texts; send texts, not text pairs")
        return list(inputs)
    if est.pairs_:
        if not all(pairs):
            raise ApiError(422, f"{name} classifies text pairs; send each input as "
                                '{"text": ..., "text_pair": ...}')
        return [(x.text, x.text_pair) for x in inputs]
    if any(pairs):
        raise ApiError(422, f"{name} classifies single texts, not text pairs; send texts")
    return list(inputs)


def tei_inputs(inputs: Union[str, list]) -> tuple[list, bool]:
    """text-embeddings-inference's input shapes as (inputs, batch?): a string or a pair
    [a, b] is one input (answered with one list of predictions); [[a], [a, b], ...] a batch."""
    if isinstance(inputs, str):
        return [inputs], False
    if not inputs:
        raise ApiError(422, "inputs is empty: send a string, a pair, or a batch")
    if isinstance(inputs[0], str):
        if len(inputs) > 2:
            raise ApiError(422, f"inputs: a list of strings is one text [a] or a pair [a, b], not {len(inputs)} "
                                f"strings; send a batch as [[a], [b], ...]")
        return [inputs[0] if len(inputs) == 1 else PairInput(text=inputs[0], text_pair=inputs[1])], False
    out = []
    for i, seq in enumerate(inputs):
        if len(seq) not in (1, 2):
            raise ApiError(422, f"inputs.{i}: each batch item is [text] or [text, text_pair], not {len(seq)} strings")
        out.append(seq[0] if len(seq) == 1 else PairInput(text=seq[0], text_pair=seq[1]))
    return out, True


def tei_predictions(record: dict) -> list[dict]:
    """One record as text-embeddings-inference answers: every label with its score, best first."""
    if "probabilities" in record:
        return [{"score": float(p), "label": str(label)}
                for label, p in sorted(record["probabilities"].items(), key=lambda kv: -kv[1])]
    return [{"score": float(record["value"]), "label": "value"}]
