# The two set-up commands of whisper-ja: `make demo` and `make test`.
# Both build .venv from nothing; torch is installed first and pinned, because an
# unpinned torch pulls a multi-GB CUDA build (override: make test TORCH="torch==X").
PYTHON ?= python3.11
TORCH ?= torch==2.13.0
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint env clean

# OpenAI's openai-whisper sdist (MIT) holds the BPE ranks the large-v3 tokenizer is built from
# offline (whisper_ja.model.openai_tokenizer); only the file is needed, never the package.
OPENAI_SDIST := openai-whisper==20250625
OPENAI_SDIST_DIR := $(VENV)/share/whisper-ja

# espeak-ng (Debian) synthesizes the English speech of the retention (forgetting) check.
SYSDEPS := espeak-ng
# Debian's chromium runs the browser tests of `whisper-ja serve` through Playwright
# (executable_path=/usr/bin/chromium: Playwright's own browser download cannot work here);
# chromium-driver serves Selenium users; fonts-ipafont-gothic draws Japanese in screenshots.
BROWSER_DEPS := chromium chromium-driver fonts-ipafont-gothic

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	@command -v espeak-ng >/dev/null || { apt-get update -qq && apt-get install -y -qq $(SYSDEPS); }
	@dpkg -s $(BROWSER_DEPS) >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq $(BROWSER_DEPS); }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev,offline]"
	$(PY) -m pip download -q --no-deps --no-binary :all: -d $(OPENAI_SDIST_DIR) $(OPENAI_SDIST)
	touch $(STAMP)

env: $(STAMP)

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy src
	$(VENV)/bin/pytest -n 2 -q --durations=15

demo: $(STAMP)
	$(VENV)/bin/whisper-ja demo --out demo_out

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy src

clean:
	rm -rf $(VENV) demo_out
