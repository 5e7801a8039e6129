"""The page at `/` of `lmclassify serve`, in a real browser: Debian's headless Chromium
(`make install` puts it at /usr/bin/chromium; never a browser download), driven by
playwright, types a text, submits, and reads the label, the probability bars, the entity
spans and the API-key prompt the page shows, against a real uvicorn server on 127.0.0.1."""
from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
import torch
from test_serve import serving, train_models

import lmclassify

CHROMIUM = Path(os.environ.get("LMCLASSIFY_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"no Chromium at {CHROMIUM}: `make install` installs "
                                "Debian's chromium when run as root with apt reachable")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")


@pytest.fixture(scope="module")
def estimators(tmp_path_factory, tiny_gpt2_dir, tiny_bert_dir) -> dict:
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # the tagger trained until it finds "Paris" in a new sentence: a span to highlight
        dirs = train_models(tmp_path_factory.mktemp("page"), tiny_gpt2_dir, tiny_bert_dir, shapes=("single", "tokens"),
                            token_options={"epochs": 15, "learning_rate": 5e-3})
    finally:
        torch.set_num_threads(n)
    return {name: lmclassify.load(d, device="cpu") for name, d in dirs.items()}


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A persistent context on a fresh, empty profile, as the issue asks (--user-data-dir)."""
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM), headless=True,
            args=ARGS, viewport={"width": 900, "height": 800})
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser):
    pg = browser.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    pg.close()


def _predict_in_page(page, model: str, text: str) -> None:
    page.wait_for_selector(f"#model option[value='{model}']", state="attached")
    page.select_option("#model", model)
    page.fill("#text", text)
    page.click("#predict")
    page.wait_for_selector("#result #label")


def test_page_shows_label_and_probability_bars(page, estimators):
    text = "what a wonderful, touching film"
    with serving(estimators) as url:
        want = httpx.post(url + "/v1/predict", json={"model": "single", "inputs": [text]}).json()["predictions"][0]
        page.goto(url + "/")
        _predict_in_page(page, "single", text)
        assert page.inner_text("#label") == want["label"]
        rows = page.query_selector_all("#result .row")
        shown = {r.get_attribute("data-label"): r for r in rows}
        assert set(shown) == set(want["probabilities"])
        order = [r.get_attribute("data-label") for r in rows]
        assert order == sorted(want["probabilities"], key=lambda k: -want["probabilities"][k])  # best first
        for label, p in want["probabilities"].items():
            row = shown[label]
            assert row.query_selector(".pct").inner_text() == f"{100 * p:.1f} %"
            bar = row.query_selector(".bar").bounding_box()["width"]
            track = row.query_selector(".track").bounding_box()["width"]
            assert bar / track == pytest.approx(p, abs=0.01)  # the bar is drawn as long as the probability
            assert ("chosen" in row.get_attribute("class")) == (label == want["label"])
        assert page.inner_text("#error") == ""
        if os.environ.get("LMCLASSIFY_SCREENSHOTS"):
            page.screenshot(path=str(Path(os.environ["LMCLASSIFY_SCREENSHOTS"]) / "page-single.png"))


def test_page_highlights_entities_of_a_token_model(page, estimators):
    text = "I flew to Paris with John Smith"
    with serving(estimators) as url:
        want = httpx.post(url + "/v1/predict", json={"model": "tokens", "inputs": [text]}).json()["predictions"][0]
        assert "Paris" in [e["text"] for e in want["entities"]]
        page.goto(url + "/")
        _predict_in_page(page, "tokens", text)
        cells = [c.inner_text() for c in page.query_selector_all("#tags td")]
        assert cells[0::2] == want["tokens"] and cells[1::2] == want["tags"]
        marks = page.query_selector_all("#result mark")
        assert [m.get_attribute("data-label") for m in marks] == [e["label"] for e in want["entities"]]
        assert [m.evaluate("m => m.firstChild.textContent") for m in marks] == [e["text"] for e in want["entities"]]
        shown, at = "", 0  # the text as typed, each entity followed by its label tag
        for e in want["entities"]:
            shown += text[at:e["end"]] + e["label"]
            at = e["end"]
        assert page.eval_on_selector("#result .spans", "e => e.textContent") == shown + text[at:]
        assert "token" in page.inner_text("#info")
        if os.environ.get("LMCLASSIFY_SCREENSHOTS"):  # to look at the page: a folder for the pictures
            page.screenshot(path=str(Path(os.environ["LMCLASSIFY_SCREENSHOTS"]) / "page-tokens.png"))


def test_page_asks_for_the_api_key(page, estimators):
    with serving(estimators, api_key="page-key") as url:
        page.goto(url + "/")
        page.wait_for_selector("#key-box:not([hidden])")
        assert "API key" in page.inner_text("#error")
        page.fill("#key", "page-key")
        page.dispatch_event("#key", "change")
        _predict_in_page(page, "single", "fine")
        assert page.inner_text("#label") in ("pos", "neg")
        assert page.inner_text("#error") == ""
