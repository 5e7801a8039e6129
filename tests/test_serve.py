"""`lmclassify serve` through real uvicorn servers on 127.0.0.1: one started by the real CLI
in its own process (default options) serving a tiny model of every task shape, and small
in-process ones where a test needs other limits. Covers every endpoint and shape (records
equal to `lmclassify predict`'s), dynamic batching (concurrent requests in one model call,
each answered with its own records), every hostile request of the API (one-line JSON
error, right status) with the server still answering correctly afterwards, the API key,
/metrics, and a graceful SIGTERM."""
from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import torch

import lmclassify
from lmclassify import TextClassifier, TokenClassifier

TEXTS = ["a great movie, loved it", "terrible plot and bad acting", "fine", "what a wonderful day",
         "the worst film I have seen", "good fun for everyone", "boring and slow", "brilliant"] * 3
TOKEN_X = [["Paris", "is", "in", "France"], ["I", "met", "John", "Smith"], ["Berlin", "and", "Rome"],
           ["she", "lives", "in", "London"], ["Mary", "went", "home"], ["nothing", "here"]] * 3
TOKEN_Y = [["B-loc", "O", "O", "B-loc"], ["O", "O", "B-per", "I-per"], ["B-loc", "O", "B-loc"],
           ["O", "O", "O", "B-loc"], ["B-per", "O", "O"], ["O", "O"]] * 3
# What each served shape is asked in the tests: API inputs, and the same as predict() takes them.
ASK = {
    "single": ["an excellent film", "awful", "it was ok I guess, nothing special"],
    "multi": ["great fun", "slow and boring but well acted"],
    "pairs": [{"text": "A man eats.", "text_pair": "Someone is eating."}, {"text": "Cats", "text_pair": "Dogs bark"}],
    "tokens": ["I flew to Paris with John Smith", "nothing  here", "Berlin"],
}
FAST = dict(epochs=1, batch_size=8, learning_rate=1e-3, max_length=64, progress=False, device="cpu")


# ---- helpers the page test shares ---------------------------------------------------------

def train_models(root: Path, tiny_gpt2_dir: Path, tiny_bert_dir: Path, shapes=tuple(ASK),
                 token_options: dict | None = None) -> dict[str, Path]:
    """One tiny saved model per task shape, each in a directory named after it."""
    out = {}
    for shape in shapes:
        if shape == "single":
            est = TextClassifier(str(tiny_gpt2_dir), **FAST).fit(TEXTS, ["pos", "neg"] * 12)
        elif shape == "multi":
            est = TextClassifier(str(tiny_gpt2_dir), **FAST).fit(TEXTS, [["fun"], ["slow", "bad"], ["fun", "good"]] * 8)
        elif shape == "pairs":
            est = TextClassifier(str(tiny_bert_dir), **FAST).fit([(t, t[::-1]) for t in TEXTS], [0.5, 4.0, 2.5] * 8)
        else:
            est = TokenClassifier(str(tiny_bert_dir), **{**FAST, **(token_options or {})}).fit(TOKEN_X, TOKEN_Y)
        out[shape] = est.save(root / shape)
    return out


def as_predict_inputs(inputs: list) -> list:
    return [(x["text"], x["text_pair"]) if isinstance(x, dict) else x for x in inputs]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(models: dict, **options):
    """An in-process uvicorn server on a free port for ``models`` (name -> estimator)."""
    import uvicorn

    from lmclassify.serve import ServeOptions, create_app

    app = create_app(models, ServeOptions(**options))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "in-process server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(30)


def launch_cli(dirs: list, *args: str) -> tuple[subprocess.Popen, str]:
    """`lmclassify serve` in its own process, on a free port (not waiting for it)."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "lmclassify", "serve", *map(str, dirs), "--port", str(port),
                             "--device", "cpu", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    return proc, f"http://127.0.0.1:{port}"


def wait_ready(proc: subprocess.Popen, url: str, seconds: float = 120) -> str:
    deadline = time.monotonic() + seconds
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"lmclassify serve exited {proc.returncode}:\n{proc.stderr.read()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                return url
        assert time.monotonic() < deadline, "lmclassify serve did not become ready"
        time.sleep(0.2)


def stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def same_records(got: list[dict], want: list[dict]) -> None:
    """Equal records; floats to rounding (a batch padded differently sums in another order)."""
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.keys() == w.keys()
        for k, v in w.items():
            if k == "probabilities":
                assert g[k] == pytest.approx(v, rel=1e-4, abs=1e-5)
            elif k == "entities":
                assert [{**e, "score": 0} for e in g[k]] == [{**e, "score": 0} for e in v]
                assert [e["score"] for e in g[k]] == pytest.approx([e["score"] for e in v], rel=1e-4, abs=1e-5)
            elif isinstance(v, float):
                assert g[k] == pytest.approx(v, rel=1e-4, abs=1e-5)
            else:
                assert g[k] == v, k


def is_error(r: httpx.Response, status: int, *words: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and "\n" not in body["error"]
    for w in words:
        assert w in body["error"], body["error"]


# ---- fixtures ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory, tiny_gpt2_dir, tiny_bert_dir) -> dict[str, Path]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread, or two wait on each other on 2 cores
    try:
        return train_models(tmp_path_factory.mktemp("served"), tiny_gpt2_dir, tiny_bert_dir)
    finally:
        torch.set_num_threads(n)


@pytest.fixture(scope="module")
def expected(model_dirs) -> dict[str, list[dict]]:
    """What `lmclassify predict` answers for each shape's questions (the job the CLI calls)."""
    return {s: lmclassify.predict(d, as_predict_inputs(ASK[s]), device="cpu") for s, d in model_dirs.items()}


@pytest.fixture(scope="module")
def estimators(model_dirs) -> dict:
    return {s: lmclassify.load(d, device="cpu") for s, d in model_dirs.items()}


@pytest.fixture(scope="module")
def launched(model_dirs):
    """Both CLI servers start at once (their imports overlap): every shape with the default
    limits, and one whose batches wait 1.5 s for company, for the SIGTERM test."""
    procs = {"main": launch_cli(list(model_dirs.values()), "--threads", "1"),
             "slow": launch_cli([model_dirs["single"]], "--max-wait-ms", "1500", "--threads", "1")}
    yield procs
    codes = {name: stop(proc) for name, (proc, _) in procs.items()}
    assert codes["main"] == 0


@pytest.fixture(scope="module")
def server(launched):
    return wait_ready(*launched["main"])


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server, timeout=60) as c:
        yield c


# ---- endpoints -------------------------------------------------------------------------

def test_health_ready_and_models(client, estimators):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"ready": True, "models": list(ASK)}
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert list(models) == list(ASK)
    for name, est in estimators.items():
        m = models[name]
        assert m["task"] == est.task_.kind and m["labels"] == [str(c) for c in est.task_.classes]
        assert m["pairs"] == (name == "pairs") and m["quantize"] is None
        assert m["base_model"] == est.model_config_.name and m["max_length"] == est.model_config_.max_length
    assert [models[n]["task"] for n in ASK] == ["single", "multi", "regression", "token"]
    assert models["multi"]["labels"] == ["bad", "fun", "good", "slow"]


@pytest.mark.parametrize("shape", list(ASK))
def test_predict_every_shape_equals_lmclassify_predict(client, expected, shape):
    r = client.post("/v1/predict", json={"model": shape, "inputs": ASK[shape]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == shape
    same_records(body["predictions"], expected[shape])
    rec = body["predictions"][0]
    assert {"single": {"text", "label", "score", "probabilities"}, "multi": {"text", "labels", "probabilities"},
            "pairs": {"text", "text_pair", "value"}, "tokens": {"text", "tokens", "tags", "entities"}}[shape] == set(rec)
    if shape == "tokens":  # offsets point into the text as sent (two spaces kept)
        assert body["predictions"][1]["tokens"] == ["nothing", "here"]
        for rec in body["predictions"]:
            for e in rec["entities"]:
                assert rec["text"][e["start"]:e["end"]] == e["text"]


def test_over_long_text_is_truncated_not_refused(client, model_dirs):
    text = " ".join(["word"] * 3000)  # far past max_length for every model
    for shape in ("single", "tokens"):
        r = client.post("/v1/predict", json={"model": shape, "inputs": [text]})
        assert r.status_code == 200, r.text
        same_records(r.json()["predictions"], lmclassify.predict(model_dirs[shape], [text], device="cpu"))


def test_tei_predict_shapes(client, expected):
    probs = expected["single"][0]["probabilities"]
    r = client.post("/predict", json={"model": "single", "inputs": ASK["single"][0]})
    assert r.status_code == 200, r.text
    one = r.json()  # one input: one list of predictions, best first
    assert [p["label"] for p in one] == sorted(probs, key=lambda k: -probs[k])
    assert {p["label"]: p["score"] for p in one} == pytest.approx(probs, rel=1e-4)
    batch = client.post("/predict", json={"model": "single", "inputs": [[t] for t in ASK["single"]]}).json()
    assert len(batch) == 3 and all(len(b) == 2 for b in batch)
    assert batch[2][0]["label"] == expected["single"][2]["label"]
    pair = client.post("/predict", json={"model": "pairs", "inputs": ["A man eats.", "Someone is eating."]}).json()
    assert pair == [{"label": "value", "score": pytest.approx(expected["pairs"][0]["value"], rel=1e-4)}]
    pairs = client.post("/predict", json={"model": "pairs", "inputs": [["A man eats.", "Someone is eating."],
                                                                        ["Cats", "Dogs bark"]]}).json()
    assert [p[0]["score"] for p in pairs] == pytest.approx([e["value"] for e in expected["pairs"]], rel=1e-4)
    multi = client.post("/predict", json={"model": "multi", "inputs": ASK["multi"][0]}).json()
    assert {p["label"] for p in multi} == {"bad", "fun", "good", "slow"}


def test_page_is_served_self_contained(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "/v1/predict" in r.text and "<script" in r.text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", r.text), "the page must load nothing from elsewhere"
    assert client.get("/openapi.json").json()["paths"].keys() >= {"/v1/predict", "/predict", "/v1/models"}


# ---- hostile requests: one-line JSON errors with the right status -------------------------

BIG = 1 << 20  # the default --max-body-bytes
HOSTILE = [
    # (id, method, path, kwargs, status, words in the error)
    ("malformed_json", "POST", "/v1/predict", dict(content=b'{"inputs": [', headers={"content-type": "application/json"}),
     400, ["malformed JSON"]),
    ("nested_too_deep", "POST", "/v1/predict", dict(content=b"[" * 100_000, headers={"content-type": "application/json"}),
     400, ["malformed JSON"]),
    ("not_utf8", "POST", "/v1/predict", dict(content=b'{"inputs": ["\xff"]}', headers={"content-type": "application/json"}),
     400, ["malformed JSON"]),
    ("not_json", "POST", "/v1/predict", dict(content=b"inputs=hello", headers={"content-type": "application/x-www-form-urlencoded"}),
     400, ["Content-Type: application/json"]),
    ("inputs_not_a_list", "POST", "/v1/predict", dict(json={"model": "single", "inputs": "hello"}), 422, ["inputs"]),
    ("input_a_number", "POST", "/v1/predict", dict(json={"model": "single", "inputs": ["ok", 42]}), 422, ["inputs.1"]),
    ("inputs_missing", "POST", "/v1/predict", dict(json={"model": "single"}), 422, ["inputs", "required"]),
    ("unknown_field", "POST", "/v1/predict", dict(json={"model": "single", "inputs": ["a"], "top_k": 3}), 422, ["top_k"]),
    ("body_a_list", "POST", "/v1/predict", dict(json=["hello"]), 422, []),
    ("empty_inputs", "POST", "/v1/predict", dict(json={"model": "single", "inputs": []}), 422, ["empty"]),
    ("bad_timeout", "POST", "/v1/predict", dict(json={"model": "single", "inputs": ["a"], "timeout_ms": -5}), 422,
     ["timeout_ms"]),
    ("unknown_model", "POST", "/v1/predict", dict(json={"model": "../../etc", "inputs": ["a"]}), 404, ["no model named"]),
    ("model_needed", "POST", "/v1/predict", dict(json={"inputs": ["a"]}), 422, ["several models"]),
    ("pair_to_single", "POST", "/v1/predict", dict(json={"model": "single", "inputs": [{"text": "a", "text_pair": "b"}]}),
     422, ["single texts"]),
    ("text_to_pairs", "POST", "/v1/predict", dict(json={"model": "pairs", "inputs": ["a"]}), 422, ["text pairs"]),
    ("half_a_pair", "POST", "/v1/predict", dict(json={"model": "pairs", "inputs": [{"text": "a"}]}), 422, ["text_pair"]),
    ("pair_to_tokens", "POST", "/v1/predict", dict(json={"model": "tokens", "inputs": [{"text": "a", "text_pair": "b"}]}),
     422, ["words"]),
    ("too_many_texts", "POST", "/v1/predict", dict(json={"model": "single", "inputs": ["a"] * 257}), 413, ["257", "256"]),
    ("body_too_large", "POST", "/v1/predict", dict(json={"model": "single", "inputs": ["x" * BIG]}), 413, ["bytes"]),
    ("body_too_large_chunked", "POST", "/v1/predict",
     dict(content=iter([b'{"model": "single", "inputs": ["', b"x" * BIG, b'"]}']), headers={"content-type": "application/json"}),
     413, ["bytes"]),
    ("time_budget", "POST", "/v1/predict",
     dict(json={"model": "tokens", "inputs": [" ".join(["word"] * 300)] * 200, "timeout_ms": 1}), 504, ["time budget"]),
    ("tei_three_strings", "POST", "/predict", dict(json={"model": "single", "inputs": ["a", "b", "c"]}), 422, ["pair"]),
    ("tei_empty", "POST", "/predict", dict(json={"model": "single", "inputs": []}), 422, ["empty"]),
    ("tei_raw_scores", "POST", "/predict", dict(json={"model": "single", "inputs": "a", "raw_scores": True}), 422,
     ["raw_scores"]),
    ("tei_token_model", "POST", "/predict", dict(json={"model": "tokens", "inputs": "a b"}), 422, ["/v1/predict"]),
    ("tei_pair_to_single", "POST", "/predict", dict(json={"model": "single", "inputs": ["a", "b"]}), 422, ["single texts"]),
    ("no_such_endpoint", "GET", "/v2/predict", {}, 404, ["no such endpoint"]),
    ("wrong_method", "GET", "/v1/predict", {}, 405, ["GET"]),
]


@pytest.mark.parametrize("case", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_request(client, case):
    _, method, path, kwargs, status, words = case
    is_error(client.request(method, path, **kwargs), status, *words)


def test_still_answers_correctly_after_hostile_requests(client, expected):
    for shape in ASK:
        r = client.post("/v1/predict", json={"model": shape, "inputs": ASK[shape]})
        assert r.status_code == 200, r.text
        same_records(r.json()["predictions"], expected[shape])


# ---- dynamic batching ----------------------------------------------------------------------

async def _concurrently(url: str, bodies: list[dict]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        return await asyncio.gather(*(c.post("/v1/predict", json=b) for b in bodies))


def _metric(text: str, name: str, **labels) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(name + ("{" + want + "}" if want else " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_concurrent_requests_share_one_model_call(estimators):
    """Six requests of 1-4 texts arrive within the batch's wait: one model call, each its own answer."""
    est = estimators["single"]
    texts = ["an excellent film", "awful", "it was ok I guess", "loved every minute of it", "meh", "no",
             "a long and winding story that never ends", "superb", "bad", "fine", "really good", "why"]
    bodies = [{"inputs": texts[i:j]} for i, j in ((0, 1), (1, 3), (3, 6), (6, 10), (10, 11), (11, 12))]
    with serving({"single": est}, max_wait_ms=1500) as url:
        responses = asyncio.run(_concurrently(url, bodies))
        metrics = httpx.get(url + "/metrics").text
    want = est.predict_records(texts)
    for body, r in zip(bodies, responses):
        assert r.status_code == 200, r.text
        got = r.json()["predictions"]
        assert [g["text"] for g in got] == body["inputs"]  # each request gets its own slice, in order
        same_records(got, want[texts.index(body["inputs"][0]):][:len(got)])
    assert _metric(metrics, "lmclassify_batch_texts_count", model="single") == 1
    assert _metric(metrics, "lmclassify_batch_texts_sum", model="single") == len(texts)


def test_batches_stop_at_max_batch_size(estimators):
    with serving({"multi": estimators["multi"]}, max_wait_ms=1000, max_batch_size=4) as url:
        responses = asyncio.run(_concurrently(url, [{"inputs": ["a", "b", "c"]}, {"inputs": ["d", "e", "f"]},
                                                    {"inputs": ["g"]}]))
        metrics = httpx.get(url + "/metrics").text
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert _metric(metrics, "lmclassify_batch_texts_count", model="multi") == 2  # 3 | 3+1
    assert _metric(metrics, "lmclassify_batch_texts_sum", model="multi") == 7


def test_queue_full_is_503_with_retry_after(estimators):
    async def go(url):
        async with httpx.AsyncClient(base_url=url, timeout=60) as c:
            first = asyncio.create_task(c.post("/v1/predict", json={"inputs": ["w"] * 8}))
            for _ in range(200):  # the first request is queued, its batch waiting for company
                if _metric((await c.get("/metrics")).text, "lmclassify_queue_texts", model="single") == 8:
                    break
                await asyncio.sleep(0.01)
            second = await c.post("/v1/predict", json={"inputs": ["one more"]})
            return await first, second, await c.post("/v1/predict", json={"inputs": ["after"]})

    with serving({"single": estimators["single"]}, max_queue=8, max_texts=8, max_wait_ms=1000) as url:
        first, second, after = asyncio.run(go(url))
    assert first.status_code == 200 and len(first.json()["predictions"]) == 8
    is_error(second, 503, "queue full")
    assert int(second.headers["retry-after"]) >= 1
    assert after.status_code == 200  # the queue drained


def test_one_bad_input_does_not_spoil_the_batch(estimators):
    """A request the model itself refuses (LmClassifyError) fails alone; its batch-mates are answered."""
    class Picky:
        def __init__(self, est):
            self.est, self.task_, self.pairs_, self.model_config_ = est, est.task_, est.pairs_, est.model_config_

        def predict_records(self, inputs):
            if "poison" in inputs:
                raise lmclassify.LmClassifyError("poison is not a text this model takes")
            return self.est.predict_records(inputs)

    with serving({"single": Picky(estimators["single"])}, max_wait_ms=1000) as url:
        good, bad = asyncio.run(_concurrently(url, [{"inputs": ["fine", "good"]}, {"inputs": ["poison"]}]))
        metrics = httpx.get(url + "/metrics").text
    assert good.status_code == 200 and [p["text"] for p in good.json()["predictions"]] == ["fine", "good"]
    is_error(bad, 422, "poison")
    assert _metric(metrics, "lmclassify_requests_total", endpoint="/v1/predict", status="422") == 1


# ---- the API key, metrics, SIGTERM ---------------------------------------------------------------

def test_api_key(estimators):
    with serving({"single": estimators["single"]}, api_key="s3cret") as url:
        ask = {"inputs": ["hello"]}
        is_error(httpx.post(url + "/v1/predict", json=ask), 401, "API key")
        r = httpx.post(url + "/v1/predict", json=ask, headers={"Authorization": "Bearer wrong"})
        is_error(r, 401)
        assert r.headers["www-authenticate"] == "Bearer"
        is_error(httpx.get(url + "/v1/models", headers={"Authorization": "s3cret"}), 401)
        is_error(httpx.get(url + "/metrics"), 401)
        ok = {"Authorization": "Bearer s3cret"}
        assert httpx.post(url + "/v1/predict", json=ask, headers=ok).status_code == 200
        assert httpx.get(url + "/metrics", headers=ok).status_code == 200
        assert httpx.get(url + "/health").status_code == 200 and httpx.get(url + "/ready").status_code == 200
        assert httpx.get(url + "/").status_code == 200  # the page asks for the key itself


def test_api_key_env_must_be_set(model_dirs, capsys):
    from lmclassify.cli import main

    os.environ.pop("LMC_TEST_NO_SUCH_KEY", None)
    assert main(["serve", str(model_dirs["single"]), "--api-key-env", "LMC_TEST_NO_SUCH_KEY"]) == 2
    assert "LMC_TEST_NO_SUCH_KEY" in capsys.readouterr().err


def test_two_dirs_with_one_name_are_refused(model_dirs, tmp_path, capsys):
    import shutil

    from lmclassify.cli import main

    twin = shutil.copytree(model_dirs["single"], tmp_path / "single")
    assert main(["serve", str(model_dirs["single"]), str(twin)]) == 2
    assert "named 'single'" in capsys.readouterr().err


def test_not_a_model_directory_is_one_line(tmp_path, capsys):
    from lmclassify.cli import main

    assert main(["serve", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lmclassify: error:") and err.count("\n") == 1


def test_int8_model(model_dirs):
    est = lmclassify.load(model_dirs["single"], device="cpu", quantize="int8")
    with serving({"single": est}, quantize="int8") as url:
        info = httpx.get(url + "/v1/models").json()["models"][0]
        assert info["quantize"] == "int8" and info["int8_kernel"] == "int_mm"  # the tests' forced kernel
        r = httpx.post(url + "/v1/predict", json={"inputs": ASK["single"]})
    assert r.status_code == 200
    same_records(r.json()["predictions"], est.predict_records(ASK["single"]))


def test_metrics(client):
    client.post("/v1/predict", json={"model": "single", "inputs": ["a", "b"]})
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    m = r.text
    assert _metric(m, "lmclassify_requests_total", endpoint="/v1/predict", status="200") >= 1
    assert _metric(m, "lmclassify_requests_total", endpoint="/v1/predict", status="422") >= 1
    assert _metric(m, "lmclassify_requests_total", endpoint="/v1/predict", status="413") >= 1
    assert _metric(m, "lmclassify_requests_total", endpoint="other", status="404") >= 1
    assert _metric(m, "lmclassify_request_seconds_count", endpoint="/v1/predict") >= 1
    assert _metric(m, "lmclassify_batch_texts_count", model="single") >= 1
    assert _metric(m, "lmclassify_texts_total", model="single") >= 2
    assert "lmclassify_queue_texts{model=\"tokens\"}" in m and "lmclassify_texts_per_second" in m


def test_sigterm_finishes_requests_in_flight_and_exits_0(launched):
    proc, url = launched["slow"]
    wait_ready(proc, url)
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("r", httpx.post(url + "/v1/predict", timeout=60,
                                                                        json={"inputs": ["in flight"]})))
    t.start()
    for _ in range(200):  # queued: its batch waits 1.5 s for company
        if _metric(httpx.get(url + "/metrics").text, "lmclassify_queue_texts", model="single") == 1:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    t.join(60)
    assert box["r"].status_code == 200 and box["r"].json()["predictions"][0]["text"] == "in flight"
    assert proc.wait(60) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/health", timeout=2)
