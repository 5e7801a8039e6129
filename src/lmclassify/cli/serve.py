"""`lmclassify serve DIR [DIR ...]`: serve trained model directories over HTTP, each under
its directory's name: POST /v1/predict (and text-embeddings-inference's POST /predict),
GET /v1/models, /health, /ready, /metrics, a page to try it at /, API docs at /docs.
Concurrent requests are batched into one model call. SIGTERM stops taking requests,
answers those in flight, and exits 0."""
from __future__ import annotations

import argparse
import ipaddress
import math
import os
import signal
import sys
import warnings
from pathlib import Path

from ..errors import LmClassifyError


def add_parser(sub) -> None:
    from ..serve.limits import ServeOptions

    d = ServeOptions()
    p = sub.add_parser("serve", help="serve trained models over HTTP (batched)", description=__doc__)
    p.add_argument("model_dirs", nargs="+", metavar="DIR", help="model directories; each is served under its name")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="default: %(default)s")
    p.add_argument("--device", default="auto")
    p.add_argument("--quantize", choices=["int8", "bf16"],
                   help="int8 weights and activations (CPU): ~2x the texts/s; bf16 on CPUs with AMX")
    p.add_argument("--max-batch-size", type=int, default=d.max_batch_size, metavar="N",
                   help="most texts merged into one model call (default: %(default)s)")
    p.add_argument("--max-wait-ms", type=float, default=d.max_wait_ms, metavar="M",
                   help="how long a batch's first request waits for others (default: %(default)s)")
    p.add_argument("--max-queue", type=int, default=d.max_queue, metavar="Q",
                   help="most texts waiting for the model; past it 503 with Retry-After (default: %(default)s)")
    p.add_argument("--max-texts", type=int, default=d.max_texts, metavar="N",
                   help="most inputs in one request; past it 413 (default: %(default)s)")
    p.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes, metavar="B",
                   help="largest request body; past it 413 (default: %(default)s)")
    p.add_argument("--timeout-ms", type=int, default=d.timeout_ms, metavar="T",
                   help="a request's time budget, queueing included; past it 504 (default: %(default)s)")
    p.add_argument("--api-key-env", metavar="VAR",
                   help="require 'Authorization: Bearer <key>', the key read from this environment variable")
    p.add_argument("--batch-size", type=int, default=16, metavar="N",
                   help="texts per forward pass within a merged batch, longest first (default: %(default)s: "
                        "short texts are not padded to the longest of 64)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch threads (default: one per core; on a host busy with other work, fewer: "
                        "threads waiting on a descheduled sibling stall every matmul)")
    p.set_defaults(func=run)


def load_models(dirs: list[str], device: str = "auto", quantize=None, batch_size=None) -> dict:
    """name -> estimator for each model directory (the name is the directory's)."""
    from ..jobs.use import load_for_use

    models: dict = {}
    for d in dirs:
        name = Path(d).resolve().name
        if name in models:
            raise LmClassifyError(f"two model directories are named {name!r}; each is served under its name, "
                                  f"so give them different names")
        models[name] = load_for_use(d, device, quantize, batch_size)
    return models


def _api_key(var: str | None) -> str | None:
    if var is None:
        return None
    key = os.environ.get(var, "").strip()
    if not key:
        raise LmClassifyError(f"--api-key-env {var}: the environment variable {var} is not set or empty")
    return key


def run(a: argparse.Namespace) -> int:
    import torch
    import uvicorn

    from ..serve import ServeOptions, create_app

    opts = ServeOptions(max_batch_size=a.max_batch_size, max_wait_ms=a.max_wait_ms, max_queue=a.max_queue,
                        max_texts=a.max_texts, max_body_bytes=a.max_body_bytes, timeout_ms=a.timeout_ms,
                        api_key=_api_key(a.api_key_env), quantize=a.quantize).check()
    # Every core by default: on this project's 2-core machine, with the 64-client load generator
    # on the same cores, fp32 serving ran 1.6-1.7x and int8 1.1-1.15x the texts/s of leaving one
    # core to HTTP (bench/serve.py, runs before and after the change); the event loop needs little CPU.
    threads = torch.get_num_threads() if a.threads is None else a.threads
    if threads < 1:
        raise LmClassifyError(f"--threads must be >= 1, not {threads}")
    torch.set_num_threads(threads)  # once, before any model call; the worker thread shares it
    try:
        loopback = ipaddress.ip_address(a.host).is_loopback
    except ValueError:
        loopback = a.host == "localhost"
    if not loopback and opts.api_key is None:
        warnings.warn(f"serving on {a.host} without --api-key-env: anyone who reaches the port can use it",
                      stacklevel=1)
    app = create_app(load_models(a.model_dirs, a.device, a.quantize, a.batch_size), opts)
    config = uvicorn.Config(app, host=a.host, port=a.port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=math.ceil(opts.timeout_ms / 1000) + 5)
    server = uvicorn.Server(config)
    print(f"lmclassify: serving {', '.join(app.state.batcher.models)} on http://{a.host}:{a.port}/ "
          f"(page /, API docs /docs, metrics /metrics)", file=sys.stderr, flush=True)
    # uvicorn stops gracefully on SIGTERM, then raises the signal again so the default
    # action ends the process (status 143); a requested stop is a clean exit here.
    signal.signal(signal.SIGTERM, lambda *_: None)
    server.run()
    return 0
