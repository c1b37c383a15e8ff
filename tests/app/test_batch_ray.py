"""``--engine ray`` on real Ray clusters, over a local tree and an S3 bucket.

The clusters are real: one Ray instance started in this process with 2 CPUs
(``ray.init``), and one made of ``ray start --head`` plus a second
``ray start --address`` node on the same machine. The bucket is served on
loopback by moto's server mode, which emulates the S3 API (the same requests
s3fs sends to AWS, OSS or COS). Outputs are checked with independent readers
(exiftool for the JPEG's XMP, the format readers for the one record) and
against the ledger. Ray is heavy on a small machine, so the tests are few and
the files small.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("ray.data")
pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")

from app import batch, cli  # noqa: E402
from app.batch.storage import read_text  # noqa: E402
from tests import ray_hooks  # noqa: E402
from tests.app import test_postgres  # noqa: E402
from tests.app.test_cli import (  # noqa: E402
    EXE,
    KEYS,
    PRODUCER,
    dev_env,
    environ,
    jpeg,
    ledger_for,
    mixed_tree,
    png,
    produce_ids,
    records_in,
)
from tests.served import free_port, serve  # noqa: E402
from tests.support import EXIFTOOL_CONFIG  # noqa: E402

#: the token of the clusters these tests start (see two_nodes)
RAY_TOKEN = secrets.token_hex(32)

postgres_url = test_postgres.postgres_url  # a throwaway PostgreSQL server (a fixture)

BUCKET = "aigc-batch"


# ----------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    """An S3 endpoint on loopback (moto emulates S3), its credentials, one bucket."""
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
    try:
        fs = _fs()
        fs.mkdir(BUCKET)
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


def _fs():
    import fsspec

    return fsspec.filesystem("s3", skip_instance_cache=True, use_listings_cache=False)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """A real Ray instance in this process: 2 CPUs, no dashboard, a small object store.

    Its workers die on files named ``kills-the-worker...`` (``tests.ray_hooks``),
    the way a crash in native code kills one; every other file is handled as usual.
    """
    import ray
    from ray import cloudpickle

    # the workers cannot import the tests package: the hook travels as code, not as a name
    cloudpickle.register_pickle_by_value(ray_hooks)
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=80 * 2**20,
        log_to_driver=False,
        runtime_env={"worker_process_setup_hook": ray_hooks.kill_the_worker_on_poisoned_files},
    )
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture
def aigc_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A fresh data directory for an in-process run (the engine forwards AIGC_* to workers)."""
    for key in [k for k in os.environ if k.startswith("AIGC_")]:
        monkeypatch.delenv(key)
    env = dev_env(tmp_path)
    monkeypatch.setenv("AIGC_DATA_DIR", env["AIGC_DATA_DIR"])
    return env


def lines_of(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def bucket_files(prefix: str) -> dict[str, bytes]:
    fs = _fs()
    root = f"{BUCKET}/{prefix}"
    return {p[len(root) + 1 :]: fs.cat_file(p) for p in sorted(fs.find(root))}


def upload_tree(src: Path, prefix: str) -> None:
    fs = _fs()
    for path in sorted(src.rglob("*")):
        if path.is_file():
            fs.pipe_file(f"{BUCKET}/{prefix}/{path.relative_to(src).as_posix()}", path.read_bytes())


def exiftool_aigc(data: bytes, tmp: Path) -> dict | None:
    """The TC260 record as exiftool (an independent XMP reader) sees it in ``data``."""
    path, config = tmp / "probe.jpg", tmp / "tc260.config"
    path.write_bytes(data)
    config.write_text(EXIFTOOL_CONFIG)
    out = subprocess.run(
        ["exiftool", "-config", str(config), "-j", "-XMP-TC260:AIGC", str(path)],
        capture_output=True,
        check=True,
    )
    value = json.loads(out.stdout)[0].get("AIGC")
    return json.loads(value) if isinstance(value, str) else value


# -------------------------------------------------------------------- tests
def test_a_local_tree_labelled_into_a_bucket_reruns_as_done_and_verifies_from_the_bucket(
    ray_cluster, s3, aigc_env, tmp_path, capsys
):
    src = tmp_path / "in"
    inputs = mixed_tree(src)
    out, report = f"s3://{BUCKET}/t1/out", f"s3://{BUCKET}/t1/label.jsonl"
    args = ["label", str(src), "--out", out, "--report", report, "--engine", "ray"]
    args += ["--workers", "2", "--batch-size", "2", "--no-progress"]
    assert cli.main(args) == 1  # the corrupt JPEG fails the run, the others are labelled
    err = capsys.readouterr().err
    assert "photos/broken.jpg: corrupt-input" in err
    assert "6 labelled" in err and "1 failed" in err

    # every good input is at its mirrored key, whole, with exactly one record
    published = bucket_files("t1/out")
    assert sorted(published) == sorted(k for k in inputs if k != "photos/broken.jpg")
    lines = lines_of(read_text(report))
    header, files, summary = lines[0], [x for x in lines if x["type"] == "file"], lines[-1]
    assert header["type"] == "header" and header["identity"]["engine"] == "ray"
    assert summary["type"] == "summary" and summary["counts"] == {"failed": 1, "labelled": 6}
    by_output = {x["output"]: x for x in files if x["outcome"] == "labelled"}
    salt = bytes.fromhex(header["id_salt"])
    for rel, data in published.items():
        line = by_output[f"{out}/{rel}"]
        assert records_in(data) == [line["produce_id"]]
        # the ProduceID is the one the rules derive: rerunning can only ask for it again
        st = (src / rel).stat()
        assert line["produce_id"] == batch.derive_id(
            salt, f"{out}/{rel}", line["sha256"], st.st_mtime_ns
        )
    if shutil.which("exiftool"):
        record = exiftool_aigc(published["photos/a.jpg"], tmp_path)
        assert record["ProduceID"] == by_output[f"{out}/photos/a.jpg"]["produce_id"]
    ledger = ledger_for(aigc_env)
    assert sorted(produce_ids(ledger)) == sorted(x["produce_id"] for x in by_output.values())

    # the same command again: the report (in the bucket) says what is done; nothing twice
    assert cli.main(args) == 1  # only the corrupt file is tried again
    err = capsys.readouterr().err
    assert "6 already done in an earlier run" in err
    assert sorted(produce_ids(ledger)) == sorted(x["produce_id"] for x in by_output.values())
    assert bucket_files("t1/out") == published

    # verify reads the bucket and writes its report locally
    verify_report = tmp_path / "verify.jsonl"
    args = ["verify", f"s3://{BUCKET}/t1/out", "--report", str(verify_report)]
    assert cli.main([*args, "--engine", "ray", "--workers", "1", "--no-progress"]) == 0
    verified = [x for x in lines_of(verify_report.read_text()) if x["type"] == "file"]
    assert sorted(x["path"] for x in verified) == sorted(f"{out}/{k}" for k in published)
    assert {x["classification"] for x in verified} == {"confirmed"}
    ledger.engine.dispose()


def _actor_pids(data_dir: str) -> list[int]:
    """PIDs of this run's Ray worker actors (their title names the class, their env our dir)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            environ_ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if b"FileWorker" in cmdline and f"AIGC_DATA_DIR={data_dir}\0".encode() in environ_:
            pids.append(int(entry))
    return pids


def test_killing_a_worker_mid_run_then_rerunning_gives_every_file_once_and_a_full_report(
    ray_cluster, s3, aigc_env, tmp_path
):
    src = tmp_path / "in"
    for i in range(24):
        path = src / f"part{i % 2}" / (f"{i:02d}.png" if i % 2 else f"{i:02d}.jpg")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png(i, (160, 120)) if i % 2 else jpeg(i, (160, 120)))
    upload_tree(src, "t2/in")
    report = tmp_path / "r.jsonl"
    args = ["label", f"s3://{BUCKET}/t2/in", "--out", f"s3://{BUCKET}/t2/out"]
    args += ["--report", str(report), "--engine", "ray", "--workers", "2", "--batch-size", "2"]
    args += ["--no-progress"]
    codes: list[int] = []
    run = threading.Thread(target=lambda: codes.append(cli.main(args)))
    run.start()
    killed = None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and run.is_alive():
        done = report.read_text().count('"type":"file"') if report.exists() else 0
        pids = _actor_pids(aigc_env["AIGC_DATA_DIR"])
        if done >= 4 and pids:
            killed = pids[0]
            os.kill(killed, signal.SIGKILL)  # a worker dies with files in flight
            break
        time.sleep(0.05)
    run.join(timeout=300)
    assert killed is not None, "the run finished before a worker could be killed"
    assert not run.is_alive()
    assert codes == [0]  # Ray restarted the actor and retried its batch

    # rerun after the crash: nothing left to do, nothing done twice
    assert cli.main(args) == 0
    outputs = bucket_files("t2/out")
    inputs = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
    assert sorted(outputs) == inputs  # every file, and no other object (nothing partial)
    carried = [records_in(data) for data in outputs.values()]
    assert all(len(ids) == 1 for ids in carried)  # each output whole, with one record
    ids = sorted(c[0] for c in carried)
    assert len(set(ids)) == 24
    ledger = ledger_for(aigc_env)
    assert sorted(produce_ids(ledger)) == ids  # exactly one ledger row per file
    ledger.engine.dispose()
    finished = {}
    for line in lines_of(report.read_text()):
        if line["type"] == "file" and line["outcome"] in ("labelled", "skipped"):
            finished[line["path"]] = line
    assert sorted(finished) == [f"s3://{BUCKET}/t2/in/{rel}" for rel in inputs]
    for line in finished.values():
        assert line["produce_id"] in ids


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[str]:
    """``ray start --head`` and a second ``ray start --address`` node, 1 CPU each."""
    ray_exe = str(Path(sys.executable).with_name("ray"))
    port = free_port()
    address = f"127.0.0.1:{port}"
    # not under pytest's tmp dir: Ray's socket paths inside it must stay under
    # the 107 bytes of an AF_UNIX address (pytest-of-root/pytest-N/popen-gwN/... does not)
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    common = ["--num-cpus", "1", "--object-store-memory", str(80 * 2**20), "--block"]
    # RAY_AUTH_MODE: `ray start` turns on Ray's token authentication; drivers send the
    # token. RAY_AUTH_TOKEN: the cluster's own, for `ray start` refuses token mode on a
    # host without ~/.ray/auth_token (a fresh CI machine until something made one)
    env = environ(
        {"RAY_BACKEND_LOG_LEVEL": "error", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": RAY_TOKEN}
    )
    head = subprocess.Popen(
        [ray_exe, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
         "--include-dashboard", "false", "--temp-dir", str(temp), *common],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    procs = [head]
    try:
        _wait_for_nodes(address, 1, head)
        log = temp / "second-node.log"
        for attempt in range(2):  # on a loaded machine a Ray daemon may die starting: once more
            with open(log, "ab") as out:
                second = subprocess.Popen(
                    [ray_exe, "start", "--address", address, "--node-ip-address", "127.0.0.1",
                     *common],
                    env=env, stdout=out, stderr=out, start_new_session=True,
                )  # fmt: skip
            procs.append(second)
            try:
                _wait_for_nodes(address, 2, second)
                break
            except AssertionError:
                if attempt == 1:
                    raise AssertionError(log.read_text()[-3000:]) from None
        yield address
    finally:
        # each `ray start` leads a process group holding what it started (GCS,
        # raylet, monitors, workers): killed at once, the throwaway cluster is gone
        # in about a second, where a graceful SIGTERM stop took 36 s of the suite
        for proc in reversed(procs):
            with _suppress():
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in procs:
            proc.wait()
        shutil.rmtree(temp, ignore_errors=True)


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is ProcessLookupError


def _wait_for_nodes(address: str, count: int, proc: subprocess.Popen) -> None:
    probe = (
        "import ray,sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
        "print(sum(n['Alive'] for n in ray.nodes()))"
    )
    deadline = time.monotonic() + 300  # a loaded machine starts Ray slowly
    while time.monotonic() < deadline:
        assert proc.poll() is None, "ray start exited"
        out = subprocess.run(
            [sys.executable, "-c", probe, address],
            capture_output=True,
            text=True,
            timeout=120,
            env=environ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": RAY_TOKEN}),
        )
        if out.returncode == 0 and out.stdout.strip().isdigit() and int(out.stdout) >= count:
            return
        time.sleep(1)
    raise AssertionError(f"the Ray cluster at {address} did not reach {count} nodes")


def test_a_file_that_kills_its_worker_every_time_is_named_and_the_rest_labelled_and_propagated(
    ray_cluster, aigc_env, tmp_path, capsys
):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(5):
        (src / f"{i:02d}.jpg").write_bytes(jpeg(40 + i, (160, 120)))
    (src / f"{ray_hooks.KILLS_THE_WORKER}.jpg").write_bytes(jpeg(50, (160, 120)))
    report = tmp_path / "label.jsonl"
    args = ["label", str(src), "--out", str(tmp_path / "out"), "--report", str(report)]
    args += ["--engine", "ray", "--workers", "2", "--batch-size", "2", "--no-progress"]
    assert cli.main(args) == 1  # one file failed; the run did not stop
    err = capsys.readouterr().err
    assert f"{ray_hooks.KILLS_THE_WORKER}.jpg: worker-crashed" in err
    files = [x for x in lines_of(report.read_text()) if x["type"] == "file"]
    [crashed] = [x for x in files if x["outcome"] == "failed"]
    assert crashed["path"].endswith(f"{ray_hooks.KILLS_THE_WORKER}.jpg")
    assert crashed["error_kind"] == "worker-crashed" and "2 times" in crashed["error"]
    labelled = sorted(Path(x["path"]).name for x in files if x["outcome"] == "labelled")
    assert labelled == [f"{i:02d}.jpg" for i in range(5)]  # its batch-mate too, once each
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == labelled
    ids = [records_in((tmp_path / "out" / name).read_bytes()) for name in labelled]
    assert all(len(x) == 1 for x in ids)
    assert sorted(produce_ids(ledger_for(aigc_env))) == sorted(x[0] for x in ids)

    # the platform's write-back over the labelled tree, on the same engine
    report = tmp_path / "propagate.jsonl"
    args = ["propagate", str(tmp_path / "out"), "--out", str(tmp_path / "published")]
    args += ["--report", str(report), "--engine", "ray", "--workers", "2", "--no-progress"]
    assert cli.main(args) == 0
    files = [x for x in lines_of(report.read_text()) if x["type"] == "file"]
    assert sorted(Path(x["path"]).name for x in files) == labelled
    for line in files:
        assert line["outcome"] == "propagated" and line["classification"] == "confirmed"
        [(produce_id, _)] = records_with_propagation(Path(line["output"]).read_bytes())
        assert produce_id == line["produce_id"]


def test_server_mode_on_ray_labels_through_the_service_and_its_ledger(
    ray_cluster, aigc_env, tmp_path, monkeypatch
):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):
        (src / f"{i}.png").write_bytes(png(60 + i, (160, 120)))
    service_env = {"AIGC_DATA_DIR": str(tmp_path / "service"), "AIGC_API_KEYS": json.dumps(KEYS)}
    with serve(service_env) as base:
        monkeypatch.setenv("AIGC_API_KEY", "gen-key")  # the engine hands AIGC_* to the workers
        report = tmp_path / "label.jsonl"
        args = ["label", str(src), "--out", str(tmp_path / "out"), "--server", base]
        args += ["--report", str(report), "--engine", "ray", "--workers", "2", "--no-progress"]
        assert cli.main(args) == 0
    files = [x for x in lines_of(report.read_text()) if x["type"] == "file"]
    assert sorted(Path(x["path"]).name for x in files) == [f"{i}.png" for i in range(4)]
    assert {x["outcome"] for x in files} == {"labelled"}
    for line in files:
        assert records_in(Path(line["output"]).read_bytes()) == [line["produce_id"]]
    # the service issued the labels: its ledger has them, with the key's producer
    service = ledger_for(service_env)
    assert sorted(produce_ids(service)) == sorted(x["produce_id"] for x in files)
    assert {service.get(x["produce_id"]).record.content_producer for x in files} == {PRODUCER}
    assert produce_ids(ledger_for(aigc_env)) == []  # nothing in the client's own ledger


def records_with_propagation(data: bytes) -> list[tuple[str, str]]:
    """(ProduceID, PropagateID) of each record in ``data``, by the format's reader."""
    from labelers.formats import get_handler, sniff

    meta = get_handler(sniff(data)).read(data)
    found = {(f.record.produce_id, f.record.propagate_id) for f in meta.records}
    assert all(propagate_id for _, propagate_id in found)
    return sorted(found)


def test_two_nodes_refuse_a_sqlite_ledger_and_label_a_bucket_with_postgres(
    two_nodes,
    s3,
    postgres_url,
    tmp_path,
):
    src = tmp_path / "in"
    for i in range(6):
        (src / f"{i}.png").parent.mkdir(parents=True, exist_ok=True)
        (src / f"{i}.png").write_bytes(png(40 + i, (160, 120)))
    upload_tree(src, "t3/in")
    args = [EXE, "label", f"s3://{BUCKET}/t3/in", "--out", f"s3://{BUCKET}/t3/out"]
    args += ["--engine", "ray", "--address", two_nodes, "--workers", "2", "--no-progress"]
    env = dev_env(tmp_path) | s3 | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": RAY_TOKEN}

    refused = subprocess.run(args, env=environ(env), capture_output=True, timeout=300)
    assert refused.returncode == 2
    assert b"the ledger is SQLite" in refused.stderr and b"has 2 nodes" in refused.stderr
    assert bucket_files("t3/out") == {}  # refused before anything was written

    env["AIGC_DATABASE_URL"] = postgres_url
    report = tmp_path / "r.jsonl"
    done = subprocess.run(
        [*args, "--report", str(report)], env=environ(env), capture_output=True, timeout=300
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    outputs = bucket_files("t3/out")
    assert sorted(outputs) == [f"{i}.png" for i in range(6)]
    ids = sorted(records_in(data)[0] for data in outputs.values())
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_url)
    with engine.connect() as conn:
        in_ledger = sorted(conn.scalars(text("select produce_id from labels")))
    engine.dispose()
    assert in_ledger == ids and len(set(ids)) == 6  # one row per file, in the server ledger
    lines = [x for x in lines_of(report.read_text()) if x["type"] == "file"]
    assert sorted(x["produce_id"] for x in lines) == ids
