# Runs the labelling service. Data (SQLite ledger, development keys) lives in
# the volume /data; point AIGC_DATABASE_URL at PostgreSQL to keep the ledger
# elsewhere. Keys and certificates are passed as files (README: "Docker").
# tests/readme_smoke.py runs the same pip install step in a clean venv on
# every `make test`, since CI has no Docker daemon to build this image.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 AIGC_DATA_DIR=/data
# tesseract with Simplified Chinese reads visible labels in images for verify
# (the OCR evidence); without these packages the service runs and that
# evidence is simply absent
RUN apt-get update \
    && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-chi-sim \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /srv
COPY pyproject.toml README.md ./
COPY app ./app
COPY labelers ./labelers
COPY detectors ./detectors
RUN pip install --no-cache-dir '.[postgres]' && useradd --system --home /data aigc \
    && mkdir -p /data && chown aigc /data
USER aigc
VOLUME /data
EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["aigc-label", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
