"""``GET /metrics`` in Prometheus' text format: requests by endpoint and status, request
latency, texts per model call, the queue, texts predicted (a counter, and a gauge over the
last 10 s for a glance without PromQL). One registry per app, so two apps in one process
(tests) keep their counts apart."""
from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    def __init__(self, batcher, endpoints: set[str]):
        self.registry = r = CollectorRegistry()
        self.endpoints = endpoints  # label values: known paths only, so a scan cannot grow the series
        self.requests = Counter("lmclassify_requests", "HTTP requests by endpoint and status code",
                                ["endpoint", "status"], registry=r)
        self.latency = Histogram("lmclassify_request_seconds", "HTTP request latency (seconds)", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.batch_texts = Histogram("lmclassify_batch_texts", "texts per model call (dynamic batch size)",
                                     ["model"], buckets=BATCH_BUCKETS, registry=r)
        self.batch_seconds = Histogram("lmclassify_batch_seconds", "seconds per model call", ["model"],
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.texts = Counter("lmclassify_texts", "texts predicted", ["model"], registry=r)
        queue = Gauge("lmclassify_queue_texts", "texts waiting for the model", ["model"], registry=r)
        for name in batcher.models:
            queue.labels(name).set_function(lambda name=name: batcher.queued(name))
        Gauge("lmclassify_texts_per_second", "texts predicted per second over the last 10 s",
              registry=r).set_function(batcher.texts_per_second)

    def on_batch(self, model: str, n: int, seconds: float) -> None:
        self.batch_texts.labels(model).observe(n)
        self.batch_seconds.labels(model).observe(seconds)
        self.texts.labels(model).inc(n)

    def middleware(self, app):
        """ASGI middleware counting every response (the 401s and 413s of the outer layers too)."""
        async def counted(scope, receive, send):
            if scope["type"] != "http":
                return await app(scope, receive, send)
            endpoint = scope["path"] if scope["path"] in self.endpoints else "other"
            status = [500]

            async def send_seen(message):
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                await send(message)

            t0 = time.perf_counter()
            try:
                await app(scope, receive, send_seen)
            finally:
                self.latency.labels(endpoint).observe(time.perf_counter() - t0)
                self.requests.labels(endpoint, str(status[0])).inc()
        return counted
