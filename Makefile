# The two commands: `make run` serves, `make test` tests. Each creates or
# refreshes .venv and installs what it needs, so a fresh machine needs nothing
# installed by hand.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint bench system-deps clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,postgres]'
	touch $(STAMP)

# Debian tools the tests use as independent readers (exiftool, pdftotext, qpdf).
system-deps:
	@if ! command -v exiftool >/dev/null || ! command -v pdftotext >/dev/null || ! command -v qpdf >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
				libimage-exiftool-perl poppler-utils qpdf >/dev/null; \
		else echo "note: install exiftool, poppler-utils and qpdf for the full test suite"; fi; \
	fi

run: $(STAMP)
	$(BIN)/aigc-label serve --host $(HOST) --port $(PORT)

test: $(STAMP) system-deps
	$(BIN)/ruff check .
	$(BIN)/pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) var .pytest_cache
