# Runs the labelling service. Data (SQLite ledger, development keys) lives in
# /data: mount a volume there, or point AIGC_DATABASE_URL at PostgreSQL.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 AIGC_DATA_DIR=/data
WORKDIR /srv
COPY pyproject.toml README.md ./
COPY app ./app
COPY labelers ./labelers
COPY detectors ./detectors
RUN pip install --no-cache-dir '.[postgres]' && useradd --system --home /data aigc \
    && mkdir -p /data && chown aigc /data
USER aigc
EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["aigc-label", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
