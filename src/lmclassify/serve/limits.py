"""The server's options and the checks every request passes before an endpoint sees it,
as plain ASGI middleware (no per-request task or body copy beyond one buffer): the bearer
token (401) and the body size (413). Rejections are JSON ``{"error": ...}`` like every
other error of the API."""
from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from typing import Optional

from ..errors import LmClassifyError

# Paths anyone may read: probes, the page (it asks for the key itself) and the API docs.
OPEN_PATHS = frozenset({"/", "/health", "/ready", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/favicon.ico"})


@dataclass
class ServeOptions:
    """What ``lmclassify serve`` takes beyond the model directories.

    The defaults hold 64 concurrent clients sending a few texts each to the default decoder
    on 2 CPU cores: ~160 texts in flight at most, drained at >= 10 texts/s, so the queue
    bound and the time budget leave a wide margin (bench/serve.py measures it)."""

    max_batch_size: int = 64  # texts per model call
    max_wait_ms: float = 5.0  # how long a batch's first request waits for company
    max_queue: int = 1024  # texts waiting for the model, all models together: past it 503
    max_texts: int = 256  # texts per request: past it 413
    max_body_bytes: int = 1 << 20  # request body: past it 413
    timeout_ms: int = 60_000  # a request's time budget: past it 504
    api_key: Optional[str] = None  # bearer token every non-open path needs: else 401
    quantize: Optional[str] = None

    def check(self) -> "ServeOptions":
        for name in ("max_batch_size", "max_queue", "max_texts", "max_body_bytes", "timeout_ms"):
            if getattr(self, name) < 1:
                raise LmClassifyError(f"--{name.replace('_', '-')} must be >= 1, not {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise LmClassifyError(f"--max-wait-ms must be >= 0, not {self.max_wait_ms}")
        if self.max_texts > self.max_queue:
            raise LmClassifyError(f"--max-texts {self.max_texts} is more than --max-queue {self.max_queue}: "
                                  f"such a request could never be queued")
        return self


async def send_error(send, status: int, message: str, headers: Optional[dict] = None) -> None:
    body = json.dumps({"error": message}).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    hdrs += [(k.lower().encode(), str(v).encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": body})


class BearerAuth:
    """401 unless ``Authorization: Bearer <key>`` (compared in constant time)."""

    def __init__(self, app, key: Optional[str]):
        self.app, self.key = app, key.encode() if key else None

    async def __call__(self, scope, receive, send):
        if self.key is None or scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = given.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.key):
            return await send_error(send, 401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                                    {"WWW-Authenticate": "Bearer"})
        await self.app(scope, receive, send)


class BodyLimit:
    """413 for a body over ``limit`` bytes, by its Content-Length or, when chunked, by what
    arrives (read into one buffer, then handed on whole)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        too_big = f"request body over the limit of {self.limit} bytes (--max-body-bytes)"
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await send_error(send, 413, too_big)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await send_error(send, 413, too_big)
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if replayed:  # after the body, wait for the disconnect as the server would
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
