"""The fsspec storage layer of the Ray engine, on an S3 bucket served by moto on loopback.

moto's server mode emulates the S3 API; s3fs talks to it exactly as to AWS
(or OSS/COS through their S3 APIs). No Ray here: listing, staging and
publishing are plain functions.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")

from app.batch import BatchError  # noqa: E402
from app.batch.storage import Files, RemoteReport, iter_tasks  # noqa: E402

BUCKET = "aigc-storage"


@pytest.fixture(scope="module")
def fs() -> Iterator[object]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import fsspec

    try:
        s3 = fsspec.filesystem("s3", skip_instance_cache=True, use_listings_cache=False)
        s3.mkdir(BUCKET)
        for key in ("in/a.jpg", "in/sub/b.png", "in/sub/deep/c.txt", "in/.hidden", "in/skip/d.md"):
            s3.pipe_file(f"{BUCKET}/{key}", b"x" * 10)
        s3.pipe_file(f"{BUCKET}/in/.cache/e.jpg", b"y")
        yield s3
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


def test_a_prefix_lists_like_a_directory_tree_with_the_local_rules(fs):
    base = f"s3://{BUCKET}"
    tasks = list(iter_tasks([f"{base}/in/"], f"{base}/out", exclude=["skip"]))
    assert [(t.src, t.dest) for t in tasks] == [
        (f"{base}/in/a.jpg", f"{base}/out/a.jpg"),
        (f"{base}/in/sub/b.png", f"{base}/out/sub/b.png"),
        (f"{base}/in/sub/deep/c.txt", f"{base}/out/sub/deep/c.txt"),
    ]  # hidden keys and prefixes skipped, --exclude prunes a prefix
    only = list(iter_tasks([f"{base}/in"], "/tmp/out", include=["sub/*.png"]))
    assert [(t.src, t.dest) for t in only] == [(f"{base}/in/sub/b.png", "/tmp/out/sub/b.png")]
    one = list(iter_tasks([f"{base}/in/a.jpg"], f"{base}/o"))
    assert [(t.src, t.dest) for t in one] == [(f"{base}/in/a.jpg", f"{base}/o/a.jpg")]


def test_listing_refuses_what_the_local_engine_refuses(fs, tmp_path):
    base = f"s3://{BUCKET}"
    (tmp_path / "a.jpg").write_bytes(b"x")
    with pytest.raises(BatchError, match="no such object or prefix"):
        list(iter_tasks([f"{base}/nothing-here"], f"{base}/out"))
    with pytest.raises(BatchError, match="input prefix itself"):
        list(iter_tasks([f"{base}/in"], f"{base}/in/"))
    with pytest.raises(BatchError, match="same output"):
        list(iter_tasks([f"{base}/in/a.jpg", str(tmp_path / "a.jpg")], f"{base}/o"))


def test_an_output_is_invisible_until_published_in_one_put(fs):
    files = Files()
    dest = f"s3://{BUCKET}/pub/x.bin"
    staged = files.stage(dest, b"finished bytes", 0o644)
    assert not files.exists(dest)  # staged means: nothing at any key yet
    assert fs.find(f"{BUCKET}/pub") == []
    files.publish(staged, dest)
    assert files.exists(dest)
    assert files.read(dest) == b"finished bytes"
    info = files.info(dest)
    assert info.size == len(b"finished bytes") and info.mtime_ns > 0
    with pytest.raises(FileNotFoundError):
        files.info(f"s3://{BUCKET}/pub/missing")


def test_a_report_at_a_url_resumes_from_the_uploaded_copy(fs, tmp_path):
    url = f"s3://{BUCKET}/reports/r.jsonl"
    first = RemoteReport(url, str(tmp_path / "work"))
    with open(first.local, "a") as f:
        f.write('{"type":"header"}\n')
    first.close()  # uploaded, working copy gone
    assert not os.path.exists(first.local)
    assert fs.cat_file(f"{BUCKET}/reports/r.jsonl") == b'{"type":"header"}\n'
    again = RemoteReport(url, str(tmp_path / "work"))
    with open(again.local) as f:
        assert f.read() == '{"type":"header"}\n'
