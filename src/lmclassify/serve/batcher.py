"""The dynamic batcher: concurrent requests queue per model and are merged into one
``predict_records`` call, run off the event loop in one worker thread, and each request
gets its own slice of the records back.

A batch closes when it holds ``max_batch_size`` texts or when its oldest request has
waited ``max_wait_ms`` (Triton's rule); under load the oldest has always waited longer
than that while the previous batch ran, so a free worker takes what is queued at once.
``predict_records`` sorts the merged texts by length itself (longest first, no padding
wasted), so merging needs no sorting here. Texts are truncated to the model's
``max_length``, or read in windows of it (``--long-text chunk``), so a forward pass never
holds more than ``batch_size * max_length`` tokens.

One worker thread for all models: two model calls at once would only fight over the same
cores (torch's intra-op threads already use them all).
"""
from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..errors import LmClassifyError


class ApiError(Exception):
    """A request the server refuses: an HTTP status, a one-line message, extra headers."""

    def __init__(self, status: int, message: str, headers: Optional[dict] = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


@dataclass
class _Request:
    inputs: list
    deadline: float  # loop.time() by which the answer must be back
    arrived: float
    future: asyncio.Future = field(repr=False)

    @property
    def n(self) -> int:
        return len(self.inputs)


class Batcher:
    """Queues, batches and runs predictions for the estimators in ``models`` (name -> estimator).

    >>> b = Batcher({"spam": est}, max_batch_size=64, max_wait_ms=5, max_queue=2048)  # doctest: +SKIP
    >>> await b.start(); records = await b.predict("spam", ["WINNER!"], timeout_s=30)   # doctest: +SKIP
    """

    def __init__(self, models: dict[str, Any], max_batch_size: int, max_wait_ms: float, max_queue: int,
                 on_batch: Optional[Callable[[str, int, float], None]] = None):
        self.models = models
        self.max_batch_size, self.max_wait, self.max_queue = max_batch_size, max_wait_ms / 1000, max_queue
        self.on_batch = on_batch  # (model, texts, seconds) after each model call: metrics
        self._queues: dict[str, deque[_Request]] = {name: deque() for name in models}
        self._queued: dict[str, int] = {name: 0 for name in models}  # texts waiting, per model
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lmclassify-model")
        self._recent: deque[tuple[float, int]] = deque()  # (time, texts) per batch: texts/s
        self._arrived: Optional[asyncio.Event] = None
        self._task: Optional[asyncio.Task] = None
        self._busy = False  # a batch is in the worker
        self.closing = False

    # ---- lifecycle ---------------------------------------------------------------
    async def start(self) -> None:
        self._arrived = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="lmclassify-batcher")

    async def close(self) -> None:
        """Refuse new requests, answer the queued ones, stop the worker."""
        self.closing = True
        while (self._busy or any(self._queues.values())) and self._task and not self._task.done():
            await asyncio.sleep(0.01)
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done() and not self.closing

    # ---- what the endpoints call -------------------------------------------------------
    def queued(self, model: Optional[str] = None) -> int:
        return self._queued[model] if model else sum(self._queued.values())

    def texts_per_second(self, window: float = 10.0) -> float:
        """Texts predicted per second over the last ``window`` seconds."""
        now = time.monotonic()
        while self._recent and self._recent[0][0] < now - window:
            self._recent.popleft()
        return sum(n for _, n in self._recent) / window

    async def predict(self, model: str, inputs: list, timeout_s: float) -> list[dict]:
        """The records for ``inputs``, once their batch has run: 503 when the queue is
        full or the server is stopping, 504 when ``timeout_s`` runs out first."""
        if self.closing or self._arrived is None:
            raise ApiError(503, "the server is shutting down", {"Retry-After": "1"})
        if self.queued() + len(inputs) > self.max_queue:
            raise ApiError(503, f"queue full ({self.queued()} texts waiting, at most {self.max_queue}); retry later",
                           {"Retry-After": str(self._retry_after())})
        loop = asyncio.get_running_loop()
        now = loop.time()
        req = _Request(list(inputs), now + timeout_s, now, loop.create_future())
        self._queues[model].append(req)
        self._queued[model] += req.n
        self._arrived.set()
        try:
            # wait_for cancels the future on time-out; the batcher skips cancelled requests
            return await asyncio.wait_for(req.future, timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(504, f"no answer within the time budget of {timeout_s * 1000:.0f} ms "
                                f"({self.queued()} texts queued)") from None

    def _retry_after(self) -> int:
        rate = self.texts_per_second()
        return 1 if rate <= 0 else max(1, min(60, math.ceil(self.queued() / rate)))

    # ---- the loop ------------------------------------------------------------------
    def _oldest(self) -> Optional[str]:
        heads = [(q[0].arrived, name) for name, q in self._queues.items() if q]
        return min(heads)[1] if heads else None

    def _drop_stale(self, name: str, now: float) -> None:
        """Forget requests whose caller has gone (timed out, cancelled) at the head of the queue."""
        q = self._queues[name]
        while q and (q[0].future.done() or q[0].deadline <= now):
            self._queued[name] -= q.popleft().n

    def _take(self, name: str, now: float) -> list[_Request]:
        """Requests from the front of the queue, up to max_batch_size texts (at least one)."""
        q, batch, n = self._queues[name], [], 0
        while q:
            r = q[0]
            if r.future.done() or r.deadline <= now:
                self._queued[name] -= q.popleft().n
                continue
            if batch and n + r.n > self.max_batch_size:
                break
            batch.append(q.popleft())
            self._queued[name] -= r.n
            n += r.n
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            while (name := self._oldest()) is not None:
                self._drop_stale(name, loop.time())
                q = self._queues[name]
                if not q:
                    continue
                close_at = q[0].arrived + self.max_wait
                while self._queued[name] < self.max_batch_size and loop.time() < close_at:
                    try:  # an arrival may fill the batch before the wait is over
                        await asyncio.wait_for(self._arrived.wait(), close_at - loop.time())
                    except asyncio.TimeoutError:
                        break
                    self._arrived.clear()
                batch = self._take(name, loop.time())
                if batch:
                    self._busy = True
                    try:
                        await self._run_batch(name, batch)
                    finally:
                        self._busy = False

    async def _run_batch(self, name: str, batch: list[_Request]) -> None:
        loop = asyncio.get_running_loop()
        est = self.models[name]
        inputs = [x for r in batch for x in r.inputs]
        t0 = time.perf_counter()
        try:
            records = await loop.run_in_executor(self._executor, est.predict_records, inputs)
        except LmClassifyError as e:
            if len(batch) == 1:
                _settle(batch[0], exc=ApiError(422, str(e)))
            else:  # one request's input spoilt the batch: run each alone, so only its sender hears of it
                for r in batch:
                    await self._run_batch(name, [r])
            return
        except Exception as e:  # a bug: every caller gets a 500, the loop lives on
            for r in batch:
                _settle(r, exc=e)
            return
        seconds = time.perf_counter() - t0
        self._recent.append((time.monotonic(), len(inputs)))
        if self.on_batch:
            self.on_batch(name, len(inputs), seconds)
        start = 0
        for r in batch:
            _settle(r, result=records[start:start + r.n])
            start += r.n


def _settle(r: _Request, result: Any = None, exc: Optional[BaseException] = None) -> None:
    if r.future.done():  # its caller timed out while the batch ran
        return
    if exc is not None:
        r.future.set_exception(exc)
    else:
        r.future.set_result(result)
