"""The HTTP shell: FastAPI endpoints over loaded estimators and the batcher. No logic of
its own beyond HTTP: inputs are checked against the model's shape, queued, and answered
with the records ``lmclassify predict`` prints.

>>> app = create_app({"spam": lmclassify.load("runs/spam")}, ServeOptions())   # doctest: +SKIP
>>> uvicorn.run(app, host="127.0.0.1", port=8000)                                # doctest: +SKIP

Every refusal is ``{"error": "one line"}`` with its status: 400 malformed JSON, 422 wrong
types or shapes or empty inputs, 413 too many texts or too large a body, 404 unknown
model, 401 no key, 503 queue full (with Retry-After), 504 over the time budget.
"""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any, Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException

from .. import __version__
from ..tasks import TOKEN
from .batcher import ApiError, Batcher
from .limits import BearerAuth, BodyLimit, ServeOptions
from .metrics import Metrics
from .page import PAGE
from .schemas import (ErrorBody, ModelInfo, PredictRequest, PredictResponse, TeiPrediction, TeiRequest, describe,
                      model_inputs, tei_inputs, tei_predictions)

log = logging.getLogger("lmclassify.serve")
ENDPOINTS = {"/", "/health", "/ready", "/metrics", "/v1/models", "/v1/predict", "/predict"}
ERRORS = {s: {"model": ErrorBody} for s in (400, 401, 404, 413, 422, 503, 504)}
# Union tags pydantic puts in an error's location ('inputs.0.str'): not part of the path a user wrote.
_TAGS = {"str", "PairInput", "int", "bool", "function-after", "list"}


def _where(loc: tuple) -> str:
    parts = [str(p) for p in loc[1:] if isinstance(p, int) or (p not in _TAGS and "[" not in str(p))]
    return ".".join(parts) or "body"


def _validation_message(request: Request, exc: RequestValidationError) -> tuple[int, str]:
    errors = exc.errors()
    first = errors[0] if errors else {"type": "", "loc": ("body",), "msg": "invalid request"}
    if first["type"] == "json_invalid":
        return 400, f"malformed JSON: {first.get('ctx', {}).get('error', first['msg'])}"
    ctype = request.headers.get("content-type", "")
    if first["type"] == "model_attributes_type" and tuple(first["loc"]) == ("body",) and "json" not in ctype:
        return 400, f"the body must be JSON, sent with 'Content-Type: application/json' (not {ctype or 'none'!r})"
    # A union (text or pair) fails once per alternative: the deepest failure says most.
    first = max(errors, key=lambda e: len(e["loc"]))
    where = _where(first["loc"])
    more = {w for w in (_where(e["loc"]) for e in errors) if not (where + ".").startswith(w + ".")}
    return 422, f"{where}: {first['msg']}" + (f" (and {len(more)} more)" if more else "")


def create_app(models: dict[str, Any], options: Optional[ServeOptions] = None) -> FastAPI:
    """The ASGI app serving ``models`` (name -> fitted estimator), fixed for its lifetime."""
    opts = (options or ServeOptions()).check()
    batcher = Batcher(models, opts.max_batch_size, opts.max_wait_ms, opts.max_queue)
    metrics = Metrics(batcher, ENDPOINTS)
    batcher.on_batch = metrics.on_batch
    infos = [describe(name, est) for name, est in models.items()]

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        yield
        await batcher.close()  # uvicorn has answered the requests in flight by now

    app = FastAPI(title="lmclassify", version=__version__, lifespan=lifespan,
                  description="Text classifiers and token taggers trained with lmclassify. "
                              "Requests arriving together are batched into one model call.")
    app.state.batcher, app.state.options = batcher, opts

    # ---- errors: one JSON shape ------------------------------------------------------
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return JSONResponse({"error": exc.message}, exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        status, message = _validation_message(request, exc)
        return JSONResponse({"error": message}, status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        message = {400: f"malformed JSON: {exc.detail} (not UTF-8, nested too deep, or a number too long)",
                   404: f"no such endpoint: {request.method} {request.url.path}",
                   405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
        return JSONResponse({"error": message}, exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception):
        log.exception("internal error on %s", request.url.path)
        return JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}".splitlines()[0]}, 500)

    # ---- the shared path of both predict endpoints -------------------------------
    def pick(name: Optional[str]) -> tuple[str, Any]:
        if name is None:
            if len(models) > 1:
                raise ApiError(422, f"several models are served ({', '.join(models)}); name one in \"model\"")
            name = next(iter(models))
        if name not in models:
            raise ApiError(404, f"no model named {name!r}; served: {', '.join(models)}")
        return name, models[name]

    async def run(name: str, est, raw_inputs: list, timeout_ms: Optional[int]) -> list[dict]:
        if len(raw_inputs) > opts.max_texts:
            raise ApiError(413, f"{len(raw_inputs)} inputs in one request; at most {opts.max_texts} (--max-texts)")
        inputs = model_inputs(name, est, raw_inputs)
        budget = min(opts.timeout_ms, timeout_ms or opts.timeout_ms) / 1000
        return await batcher.predict(name, inputs, budget)

    # ---- endpoints -----------------------------------------------------------------
    @app.post("/v1/predict", response_model=PredictResponse, responses=ERRORS, summary="Predict for texts or pairs")
    async def predict(req: PredictRequest):
        name, est = pick(req.model)
        records = await run(name, est, req.inputs, req.timeout_ms)
        return JSONResponse({"model": name, "predictions": records})

    @app.post("/predict", response_model=list[TeiPrediction] | list[list[TeiPrediction]], responses=ERRORS,
              summary="text-embeddings-inference's /predict")
    async def tei_predict(req: TeiRequest):
        name, est = pick(req.model)
        if req.raw_scores:
            raise ApiError(422, "raw_scores is not supported: scores are probabilities (or values)")
        if est.task_.network == TOKEN:
            raise ApiError(422, f"{name} tags words; /predict answers for text classifiers, use /v1/predict")
        inputs, batch = tei_inputs(req.inputs)
        out = [tei_predictions(r) for r in await run(name, est, inputs, None)]
        return JSONResponse(out if batch else out[0])

    @app.get("/v1/models", summary="The served models")
    async def list_models() -> dict[str, list[ModelInfo]]:
        return {"models": infos}

    @app.get("/health", summary="Live: the process answers")
    async def health():
        return {"status": "ok"}

    @app.get("/ready", responses={503: {"model": ErrorBody}}, summary="Ready: models loaded, batcher running")
    async def ready():
        if not batcher.running:
            return JSONResponse({"error": "not ready: " + ("stopping" if batcher.closing else "starting")}, 503)
        return {"ready": True, "models": list(models)}

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse(PAGE)

    # outermost last: metrics see every answer, the key is checked before a body is read
    app.add_middleware(BodyLimit, limit=opts.max_body_bytes)
    app.add_middleware(BearerAuth, key=opts.api_key)
    app.add_middleware(_Wrap, wrap=metrics.middleware)
    return app


class _Wrap:
    """Starlette's add_middleware takes a class; this one applies an ASGI wrapper function."""

    def __init__(self, app, wrap):
        self.inner = wrap(app)

    async def __call__(self, scope, receive, send):
        await self.inner(scope, receive, send)
