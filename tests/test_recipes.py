"""Recipes: the SMS spam parse (5,574 rows), local lookup, cache, and the download path
(urllib is replaced: no test touches the network)."""
from __future__ import annotations

import csv
import hashlib
import io
import os
import urllib.error
import urllib.request
import warnings
from collections import Counter
from pathlib import Path

import pytest

from lmclassify.data import recipes
from lmclassify.data.recipes import RECIPES, SMS_SHA256, get_recipe, load_sms_spam, parse_sms
from lmclassify.errors import LmClassifyError
from lmclassify.paths import cache_root, data_root

DATA = Path(os.environ.get("LMCLASSIFY_DATA") or Path(__file__).parents[1] / ".." / "shared" / "data")


@pytest.fixture
def no_local_data(tmp_path, monkeypatch) -> Path:
    """LMCLASSIFY_DATA points at an empty folder and the cache is fresh: load must download."""
    monkeypatch.setenv("LMCLASSIFY_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("LMCLASSIFY_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "data" / "sms_spam" / "SMSSpamCollection"


class FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def fake_urlopen(payload=None, error=None, calls=None):
    def urlopen(url, timeout=None):
        if calls is not None:
            calls.append((url, timeout))
        if error is not None:
            raise error
        return FakeResponse(payload)
    return urlopen


# --- registry ---------------------------------------------------------------------------

def test_sms_spam_recipe():
    r = get_recipe("sms-spam")
    assert r is RECIPES["sms-spam"] and r.name == "sms-spam"
    assert r.split == (0.7, 0.1, 0.2) and r.balance == "undersample" and r.positive_label == "spam"
    assert r.defaults == {"train_layers": 1, "epochs": 5, "batch_size": 8, "learning_rate": 5e-5, "weight_decay": 0.1}
    with pytest.raises(Exception):
        r.name = "x"  # frozen


def test_unknown_recipe_lists_the_known_ones():
    with pytest.raises(LmClassifyError, match="unknown recipe 'sms_spam'; known recipes: goemotions, mrpc, "
                                              "rte, sms-spam, sst2, stsb, trec"):
        get_recipe("sms_spam")


# --- parsing ------------------------------------------------------------------------------

def test_parse_sms_splits_on_the_first_tab_and_keeps_quotes():
    ex = parse_sms('ham\tsay "hi\nspam\ta\tb\n\nham\tend"\r\nham\tp1\u2028p2\x0cp3\n')
    assert ex.labels == ["ham", "spam", "ham", "ham"]
    assert ex.texts == ['say "hi', "a\tb", 'end"', "p1\u2028p2\x0cp3"]


def test_parse_sms_rejects_a_line_without_a_tab():
    with pytest.raises(LmClassifyError, match="line 2: expected 'label<TAB>text'"):
        parse_sms("ham\tok\nno tab here\n", "f")


def test_real_file_gives_5574_rows_and_default_csv_quoting_would_not(sms_file):
    ex = load_sms_spam()  # conftest points LMCLASSIFY_DATA at the shared data
    assert len(ex) == 5574 and Counter(ex.labels) == {"ham": 4827, "spam": 747}
    assert Path(ex.source) == sms_file
    # The trap the recipe avoids: csv's default quoting swallows line breaks after a '"'.
    with open(sms_file, encoding="utf-8", newline="") as f:
        assert len(list(csv.reader(f, delimiter="\t"))) == 5572
    with open(sms_file, encoding="utf-8", newline="") as f:
        assert [r[1] for r in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)] == ex.texts


def test_real_file_matches_its_checksum_without_a_warning(sms_file):
    assert hashlib.sha256(sms_file.read_bytes()).hexdigest() == SMS_SHA256
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_sms_spam()


def test_edited_local_file_warns_but_loads(tmp_path, monkeypatch, sms_file):
    d = tmp_path / "data" / "sms_spam"
    d.mkdir(parents=True)
    (d / "SMSSpamCollection").write_bytes(sms_file.read_bytes() + b"ham\tone more\n")
    monkeypatch.setenv("LMCLASSIFY_DATA", str(tmp_path / "data"))
    with pytest.warns(UserWarning, match="sha256 mismatch"):
        ex = load_sms_spam()
    assert len(ex) == 5575


# --- download path (no network) -------------------------------------------------------------

def test_network_failure_says_to_set_lmclassify_data(no_local_data, monkeypatch):
    calls = []
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen(error=urllib.error.URLError("offline"), calls=calls))
    with pytest.raises(LmClassifyError) as e:
        load_sms_spam()
    msg = str(e.value)
    assert "offline" in msg and "LMCLASSIFY_DATA" in msg and "sms_spam/SMSSpamCollection" in msg and "\n" not in msg
    assert calls == [(recipes.SMS_URL, 20)]
    assert not no_local_data.exists()


def test_timeout_is_a_clear_error_too(no_local_data, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen(error=TimeoutError("timed out")))
    with pytest.raises(LmClassifyError, match="timed out.*LMCLASSIFY_DATA"):
        load_sms_spam()


def test_checksum_mismatch_is_refused(no_local_data, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen(payload=b"<html>maintenance</html>"))
    with pytest.raises(LmClassifyError, match="unexpected sha256.*LMCLASSIFY_DATA"):
        load_sms_spam()
    assert not no_local_data.parent.exists()  # nothing written


def test_unwritable_cache_is_a_clear_error(no_local_data, monkeypatch, tmp_path):
    zip_path = DATA / "sms_spam" / "sms+spam+collection.zip"
    if not zip_path.is_file():
        pytest.skip(f"{zip_path} not found")
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("LMCLASSIFY_CACHE", str(tmp_path / "file"))
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen(payload=zip_path.read_bytes()))
    with pytest.raises(LmClassifyError, match="cannot write .*LMCLASSIFY_CACHE"):
        load_sms_spam()


def test_download_extracts_verifies_and_caches(no_local_data, monkeypatch):
    zip_path = DATA / "sms_spam" / "sms+spam+collection.zip"
    if not zip_path.is_file():
        pytest.skip(f"{zip_path} not found")
    calls = []
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen(payload=zip_path.read_bytes(), calls=calls))
    ex = load_sms_spam()
    assert len(ex) == 5574 and Counter(ex.labels) == {"ham": 4827, "spam": 747}
    assert hashlib.sha256(no_local_data.read_bytes()).hexdigest() == SMS_SHA256
    assert [p.name for p in no_local_data.parent.iterdir()] == ["SMSSpamCollection"]  # no temp files left
    # The second load comes from the cache: the network is not asked again.
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen(error=AssertionError("network used")))
    assert load_sms_spam().texts == ex.texts and len(calls) == 1


def test_a_corrupt_cache_file_is_downloaded_again(no_local_data, monkeypatch):
    no_local_data.parent.mkdir(parents=True)
    no_local_data.write_bytes(b"ham\ttruncated\n")
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen(error=urllib.error.URLError("offline")))
    with pytest.raises(LmClassifyError, match="offline"):
        load_sms_spam()


# --- paths ---------------------------------------------------------------------------------

def test_data_root_falls_back_to_shared_data_next_to_the_project(tmp_path, monkeypatch):
    monkeypatch.delenv("LMCLASSIFY_DATA")
    (tmp_path / "project").mkdir()
    monkeypatch.chdir(tmp_path / "project")
    assert data_root() is None
    (tmp_path / "shared" / "data").mkdir(parents=True)
    assert data_root() == (tmp_path / "shared" / "data").resolve()
    monkeypatch.setenv("LMCLASSIFY_DATA", str(tmp_path / "elsewhere"))
    assert data_root() == tmp_path / "elsewhere"


def test_cache_root(tmp_path, monkeypatch):
    monkeypatch.setenv("LMCLASSIFY_CACHE", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    monkeypatch.delenv("LMCLASSIFY_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "lmclassify"
