# The two commands: `make run` serves, `make test` tests. Each creates or
# refreshes .venv and installs what it needs, so a fresh machine needs nothing
# installed by hand.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
PREFIX ?= $(HOME)/.local

.PHONY: run test lint bench system-deps clean install smoke

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,postgres]'
	touch $(STAMP)

# Ray and the fsspec/S3 layer (--engine ray) are heavy: the tests install them, `make run` does not
RAY_STAMP := $(VENV)/.installed-ray
$(RAY_STAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install -q -e '.[ray]'
	touch $(RAY_STAMP)

# Debian tools the tests use as independent readers: exiftool (XMP/EXIF),
# poppler (pdftotext/pdftoppm), qpdf, LibreOffice (opens labelled DOCX/PPTX/XLSX),
# a CJK font so LibreOffice renders the label, PostgreSQL (the ledger's server
# option), tesseract with Chinese data (the optional OCR of visible image labels)
# wrk for benchmarks/text.py and Chromium for the browser tests (driven by Playwright),
# ffmpeg (ffprobe) and mediainfo: an independent encoder and readers for video files.
DEBIAN_TEST_PACKAGES := libimage-exiftool-perl poppler-utils qpdf libreoffice-writer-nogui \
	libreoffice-impress-nogui libreoffice-calc-nogui fonts-wqy-microhei postgresql \
	tesseract-ocr tesseract-ocr-chi-sim wrk chromium fonts-noto-color-emoji ffmpeg mediainfo
# ffmpeg/ffprobe: an independent encoder and reader of audio; espeak-ng: speech for the
# audio tests and benchmark (and, by hand, labelers/visible/voice/make_clips.py);
# sound-theme-freedesktop: real Ogg Vorbis files (beeps and tones among them)
DEBIAN_TEST_PACKAGES += espeak-ng sound-theme-freedesktop
system-deps:
	@if ! command -v exiftool >/dev/null || ! command -v pdftotext >/dev/null \
		|| ! command -v qpdf >/dev/null || ! command -v soffice >/dev/null \
		|| ! command -v ffprobe >/dev/null || ! command -v mediainfo >/dev/null \
		|| ! command -v wrk >/dev/null || ! command -v chromium >/dev/null || ! ls /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
		|| ! ls /usr/share/tesseract-ocr/*/tessdata/chi_sim.traineddata >/dev/null 2>&1 \
		|| ! command -v ffprobe >/dev/null || ! command -v espeak-ng >/dev/null \
		|| ! ls /usr/share/sounds/freedesktop/stereo/bell.oga >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
				$(DEBIAN_TEST_PACKAGES) >/dev/null; \
		else echo "note: install $(DEBIAN_TEST_PACKAGES) for the full test suite"; fi; \
	fi

run: $(STAMP)
	$(BIN)/aigc-label serve --host $(HOST) --port $(PORT)

# The aigc-label command on PATH: a link to the one in .venv (pipx install . also works).
install: $(STAMP)
	mkdir -p $(PREFIX)/bin
	ln -sf $(abspath $(BIN))/aigc-label $(PREFIX)/bin/aigc-label
	@case ":$$PATH:" in *":$(PREFIX)/bin:"*) ;; \
		*) echo "note: add $(PREFIX)/bin to PATH to call aigc-label by name";; esac

# A fresh clone in a temporary HOME: the Dockerfile's install steps in a clean
# venv, then every shell example of README.md, outputs checked (tests/readme_smoke.py).
smoke: $(STAMP)
	$(BIN)/python tests/readme_smoke.py

test: $(STAMP) $(RAY_STAMP) system-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -n 2 -q
	$(MAKE) --no-print-directory smoke

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) var .pytest_cache
