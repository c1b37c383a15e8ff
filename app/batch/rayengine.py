"""The Ray engine behind ``aigc-label label|verify|propagate --engine ray``.

The same batch as the local engine (``app.batch``: the same per-file work,
report, resume and idempotence rules, exit codes), run as a Ray Data
pipeline on a Ray cluster, over local paths or fsspec URLs (``storage``).

The pipeline
    ``read_datasource(listing)`` -> ``map_batches(worker actors)`` ->
    ``iter_rows()`` in the driver. The listing is a Ray Data source with one
    read task that walks the inputs lazily (one directory listing at a time)
    and yields small blocks of (source, destination) rows; Ray's streaming
    executor pulls them only as fast as the actors drain them
    (back-pressure), so neither the listing nor the results are ever held
    whole. Each actor of the pool builds a ``batch.Worker`` once (ledger
    connection, C2PA and record signers, settings) and then handles
    ``--batch-size`` files per call: it reads each file's bytes itself,
    through the storage layer, after checking its size against the upload
    limit. The bytes therefore cross the network once, straight from the
    store to the worker that labels them, and never sit in Ray's object
    store; only the rows and the result lines (a few hundred bytes a file)
    travel through it. The driver journals each result line as it arrives,
    exactly as the local engine does.

Guarantees (the local engine's, see ``app.batch``)
    ProduceIDs are derived from content, destination and identity, so a
    retried batch or a rerun labels nothing twice; each output is staged,
    its ledger row committed, and only then published (rename, or one PUT);
    a Ray actor that dies is restarted and its batch retried
    (``MAX_TASK_RETRIES``): files it had finished are recognised as
    "already labelled", one whose ledger row was committed but whose output
    was lost is written with that same ProduceID. A file that kills its
    actor every time (a crash in native code, the memory limit) is named:
    each batch notes the file it has in hand in the cluster's key-value store
    (``CrashNotes``), so the retry knows which file the dead actor held, and
    after ``MAX_CRASHES`` deaths that file gets a ``worker-crashed`` line, as
    in the local engine, while the rest of its batch goes on. Exactly one ledger row per
    file, then, provided every worker writes to the same ledger: on a cluster
    of more than one node that must be a server database, and a SQLite
    ledger is refused before anything starts.

Settings reach the workers as environment variables (``AIGC_*``, and the
storage credentials ``AWS_*`` / ``FSSPEC_*``) through the operator's
``runtime_env``, so workers on other nodes act as the same identity on the
same ledger as the driver (the key files the settings name must exist there
too).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from app.batch.journal import Journal
from app.batch.options import MAX_CRASHES, BatchError, BatchOptions, Summary, Task
from app.batch.pool import Tally
from app.batch.storage import STORAGE_ENV_PREFIXES, is_url, iter_tasks
from app.batch.timeline import enabled, mark

#: files per map_batches call (per actor task). Ray Data's scheduling costs per call
#: (warm rate on 2 cores: 65.9 files/s at 8, 101.5 at 32), and a killed actor's retry
#: reuses the finished files' lines from its CrashNotes, so little work is lost
DEFAULT_BATCH_SIZE = 32
#: about the bytes of one listing row (source and destination paths), to size its blocks
ROW_BYTES = 160
#: a batch whose actor died is tried again this many times before the run stops: enough
#: for the file that killed it to die MAX_CRASHES times and then be reported, not retried
MAX_TASK_RETRIES = MAX_CRASHES + 1
#: object store of a Ray instance the CLI starts itself: only rows and lines go through it
LOCAL_OBJECT_STORE_BYTES = 128 * 2**20


def worker_env() -> dict[str, str]:
    """The environment every worker needs: settings, storage credentials, one BLAS thread."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k.startswith("AIGC_") or k.startswith(STORAGE_ENV_PREFIXES)
    }
    if "AIGC_DATA_DIR" in env:
        env["AIGC_DATA_DIR"] = os.path.abspath(env["AIGC_DATA_DIR"])  # workers have another cwd
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"  # parallelism is across files
    return env


def connect(address: str | None, workers: int) -> tuple[Any, bool]:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), or start a Ray instance here.

    Returns ``ray`` and whether this call connected (and so should leave): a
    process already connected (a test, a notebook) keeps its connection.
    """
    # Ray's own start-up chatter (token notice, C++ warnings) is not this run's news
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")
    # Ray Data's usage report lives in a detached actor of its own: one more worker process
    # to start, on the two cores the run's actors are starting on (set =0 to keep it)
    os.environ.setdefault("RAY_DATA_USAGE_DISABLED", "1")
    mark("driver", "engine entered")
    try:
        import ray
    except ImportError as exc:
        raise _missing(exc) from None

    mark("driver", "ray imported")
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if ray.is_initialized():
        return ray, False
    quiet = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False}
    if address or os.environ.get("RAY_ADDRESS"):
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError) as exc:
            where = address or os.environ["RAY_ADDRESS"]
            hint = ""
            if "auth" in str(exc).lower():
                hint = (
                    "; the cluster uses Ray's token authentication: set RAY_AUTH_MODE=token "
                    "with its token in ~/.ray/auth_token or RAY_AUTH_TOKEN"
                )
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise BatchError(f"cannot join the Ray cluster at {where}: {detail}{hint}") from None
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        # Ray starts workers at nice 15 to keep its own daemons responsive; here the workers
        # are the run, and must not lose the CPU to everything else on the machine
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(
            address="local",  # a new instance, not whichever `ray start` cluster runs here
            num_cpus=max(workers, cores or 1),
            object_store_memory=LOCAL_OBJECT_STORE_BYTES,
            **quiet,
        )
    mark("driver", "ray.init returned")
    return ray, True


def _missing(exc: ImportError) -> BatchError:
    return BatchError(
        f"--engine ray needs Ray Data and fsspec: pip install 'aigc-label[ray]' ({exc})"
    )


def warm_workers(ray: Any, count: int, runtime_env: dict[str, Any]) -> list[Any]:
    """Start ``count`` task worker processes now, with Ray Data imported there.

    A Ray worker process takes seconds to start (the interpreter, Ray, then
    Ray Data once its first task arrives), and a node starts only about as
    many at once as it has CPUs. Left to Ray Data, the listing's process is
    asked for after the driver has imported Ray Data and built the pipeline,
    queues behind the actors' processes, and then keeps the ready actors
    waiting for their first rows. A task submitted right after the connection
    starts that process while the driver is still importing; it finishes
    idle, with the ``runtime_env`` (so the worker pool) the listing asks for,
    and Ray runs the listing there. Only the listing's process is warmed: a
    process that had run a task was never given to an actor in our runs
    (``benchmarks/batch.py --timeline``: Ray started a dedicated one for each
    actor), so warming the actors' would only add processes competing for the
    same cores. Nothing depends on the warm-up: if Ray starts another process
    for the listing anyway, a few imports were done in vain.
    """
    task = ray.remote(_warm).options(
        num_cpus=0, runtime_env=runtime_env, scheduling_strategy="SPREAD", max_retries=0
    )
    return [task.remote(i) for i in range(count)]


def _warm(index: int) -> int:
    """(a warm-up task) What the listing task imports: Ray Data's task side, the storage."""
    import importlib

    mark("warm", "warm-up task started", index=index)
    for module in ("ray.data", "ray.data._internal.execution.operators.map_operator"):
        importlib.import_module(module)
    importlib.import_module("app.batch.storage")
    mark("warm", "worker warmed", index=index)
    return os.getpid()


def check_ledger(ray: Any, options: BatchOptions) -> int:
    """The cluster's node count; refuse an embedded SQLite ledger on more than one node."""
    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    if nodes > 1 and not options.server:  # verify reads the ledger too (watermark -> record)
        from app.settings import Settings

        url = Settings().resolved_database_url
        if url.startswith("sqlite"):
            raise BatchError(
                f"the ledger is SQLite ({url}) but the Ray cluster has {nodes} nodes: workers on "
                "other machines would each write their own file. Point AIGC_DATABASE_URL at a "
                "server database (postgresql+psycopg://...) reachable from every node"
            )
    return nodes


class _Listing:
    """A Ray Data source: the tasks of ``storage.iter_tasks``, streamed in small blocks.

    Rows the journal lists as done carry ``resumed``: the actors hand them
    straight back, so the driver counts them without keeping the listing.
    """

    def __init__(self, walk: Callable[[], Iterator[Task]], done: set[str], rows: int) -> None:
        self.walk = walk
        self.done = done
        self.rows = rows  # one block per actor call: a block is never split across actors

    def datasource(self) -> Any:
        from ray.data.block import BlockMetadata
        from ray.data.datasource import Datasource, ReadTask

        walk, done, size = self.walk, self.done, self.rows

        def blocks() -> Iterator[Any]:
            mark("listing", "listing task started")
            import pyarrow as pa

            from app.batch.ids import canonical_path

            first = True

            rows: dict[str, list[Any]] = {"src": [], "dest": [], "resumed": []}
            for task in walk():
                rows["src"].append(task.src)
                rows["dest"].append(task.dest or "")
                rows["resumed"].append(canonical_path(task.src) in done)
                if len(rows["src"]) >= size:
                    if first:
                        mark("listing", "first block listed")
                        first = False
                    yield pa.table(rows)
                    rows = {k: [] for k in rows}
            if rows["src"]:
                yield pa.table(rows)

        class Source(Datasource):
            def estimate_inmemory_data_size(self) -> int | None:
                return None

            def get_read_tasks(self, parallelism: int, **_: Any) -> list[Any]:
                meta = BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None)
                return [ReadTask(blocks, meta)]

        return Source()


def _spawn_facts() -> dict[str, Any]:
    """(timeline) whether this process was started with the run's environment, and numpy's state."""
    try:
        with open("/proc/self/environ", "rb") as f:
            started_with = b"AIGC_RAY_TIMELINE=" in f.read()
    except OSError:
        return {}
    return {"env_at_spawn": started_with, "numpy_loaded": "numpy" in sys.modules}


class CrashNotes:
    """What each batch has done and has in hand, kept where a retry of the batch can read it.

    A batch is one block of the listing, the same rows on every retry, so it
    is keyed by its rows. Before each file the actor writes the report lines
    of the files it finished, the crashes counted so far and the file it is
    starting (Ray's cluster-wide key-value store: the retry may run on another
    node); when the batch ends the note goes. A retry that finds a note knows
    the previous actor died holding that file, and reports the files finished
    before it with their own lines rather than doing them again (which would
    report them as already labelled). One small write per file (about 0.3 ms
    of CPU, against 15 ms for labelling an average file).
    """

    NAMESPACE = "aigc-label"

    def __init__(self, run_id: str, rows: list[str]) -> None:
        import hashlib

        from ray.experimental import internal_kv

        self.kv = internal_kv
        digest = hashlib.sha256("\0".join(rows).encode("utf-8", "surrogateescape")).hexdigest()
        self.key = f"{run_id}:{digest[:32]}"
        raw = self.kv._internal_kv_get(self.key, namespace=self.NAMESPACE)
        note = json.loads(raw) if raw else {}
        self.crashes: dict[str, int] = note.get("crashes", {})
        self.finished: dict[str, str] = note.get("finished", {})  # src -> its report line
        if note.get("in_hand"):  # the previous attempt died holding this file
            held = note["in_hand"]
            self.crashes[held] = self.crashes.get(held, 0) + 1

    def starting(self, src: str) -> None:
        note = {"crashes": self.crashes, "finished": self.finished, "in_hand": src}
        self.kv._internal_kv_put(self.key, json.dumps(note), namespace=self.NAMESPACE)

    def done(self) -> None:
        self.kv._internal_kv_del(self.key, namespace=self.NAMESPACE)

    @classmethod
    def forget_run(cls, run_id: str) -> None:
        """Drop the notes of batches that never finished (the run stopped)."""
        from ray.experimental import internal_kv

        internal_kv._internal_kv_del(f"{run_id}:", del_by_prefix=True, namespace=cls.NAMESPACE)


class FileWorker:
    """One Ray actor: a ``batch.Worker`` built once, then ``batch_size`` files per call."""

    def __init__(self, options: BatchOptions, run_id: str) -> None:
        from app.batch.pool import _preload
        from app.batch.storage import Files
        from app.batch.worker import Worker

        mark("actor", "actor constructor entered", **(_spawn_facts() if enabled() else {}))
        self.run_id = run_id
        self.calls = 0
        # the driver already showed State.build's one-time notices
        logging.disable(logging.WARNING)
        try:
            self.worker = Worker(options, files=Files())
            mark("actor", "Worker built (ledger, signers)")
            _preload()  # the labelling libraries, now rather than with the first file
            mark("actor", "labelling libraries imported")
        finally:
            logging.disable(logging.NOTSET)

    def __call__(self, rows: dict[str, Any]) -> dict[str, list[str]]:
        from app.batch.worker import _failed

        self.calls += 1
        if self.calls == 1:
            mark("actor", "first batch started", files=len(rows["src"]))
        srcs = [str(src) for src in rows["src"]]
        notes = CrashNotes(self.run_id, srcs)
        lines = []
        for src, dest, resumed in zip(srcs, rows["dest"], rows["resumed"], strict=True):
            task = Task(src, str(dest) or None)
            if resumed:
                lines.append("")
                continue
            if src in notes.finished:  # done by an attempt that died later in the batch
                lines.append(notes.finished[src])
                continue
            if notes.crashes.get(src, 0) >= MAX_CRASHES:
                line = _failed(
                    task,
                    "worker-crashed",
                    f"the worker process died while handling this file ({MAX_CRASHES} times)",
                )
            else:
                notes.starting(src)
                line = self.worker.handle(task)
            lines.append(json.dumps(line, ensure_ascii=False))
            notes.finished[src] = lines[-1]
        notes.done()
        if self.calls == 1:
            mark("actor", "first batch finished")
        return {"line": lines}


def run(
    options: BatchOptions,
    inputs: list[str],
    out: str | None,
    include: list[str] | None,
    exclude: list[str] | None,
    skip: list[str],
    journal: Journal,
    *,
    workers: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    worker_memory: int | None = None,
    address: str | None = None,
    progress: bool = True,
    on_line: Callable[[dict[str, Any]], None] | None = None,
) -> Summary:
    """Process the inputs on Ray with ``workers`` actors; journal each file; the summary."""
    for given in inputs:  # fail before a cluster starts, with the local engine's words
        _check_exists(given)
    ray, joined = connect(address, workers)
    # one runtime_env for the warm-ups, the listing (it reads the store too) and the actors:
    # the same environment hash is what lets Ray give them the same worker processes
    env = {"env_vars": worker_env()}
    try:
        warm_workers(ray, 1, env)  # the listing's process
        return _run(
            env,
            ray,
            options,
            inputs,
            out,
            include,
            exclude,
            skip,
            journal,
            workers,
            batch_size,
            worker_memory,
            progress,
            on_line,
        )
    finally:
        if joined:
            ray.shutdown()


def _run(
    env: dict[str, Any],
    ray: Any,
    options: BatchOptions,
    inputs: list[str],
    out: str | None,
    include: list[str] | None,
    exclude: list[str] | None,
    skip: list[str],
    journal: Journal,
    workers: int,
    batch_size: int,
    worker_memory: int | None,
    progress: bool,
    on_line: Callable[[dict[str, Any]], None] | None,
) -> Summary:
    import time

    try:
        import ray.data
    except ImportError as exc:
        raise _missing(exc) from None

    mark("driver", "ray.data imported")
    check_ledger(ray, options)
    mark("driver", "cluster nodes checked")

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = progress and sys.stderr.isatty()
    # Ray Data merges the small blocks a task yields up to this size (128 MB by default):
    # the whole listing would become one block, so one actor task. Rows are paths, about
    # ROW_BYTES each: blocks of about a batch keep every actor busy and results streaming.
    context.target_max_block_size = ROW_BYTES * batch_size
    summary = Summary()
    started = time.monotonic()

    def walk() -> Iterator[Task]:
        return iter_tasks(inputs, out, include, exclude, skip)

    import uuid

    listing = _Listing(walk, journal.done_keys(), batch_size).datasource()
    mark("driver", "journal read, pipeline built")
    run_id = uuid.uuid4().hex
    tally = Tally(journal, summary, None, on_line)
    with warnings.catch_warnings():
        # max_task_retries has no named parameter yet: Ray's default retries forever
        warnings.simplefilter("ignore", DeprecationWarning)
        # Ray counts the one listing task as one input; its blocks do reach every actor
        warnings.filterwarnings("ignore", "The minimum number of concurrent actors")
        dataset = ray.data.read_datasource(
            listing, num_cpus=0, override_num_blocks=1, runtime_env=env
        )
        dataset = dataset.map_batches(
            FileWorker,
            fn_constructor_args=(options, run_id),
            batch_size=batch_size,
            # two tasks queued per actor: never idle, little to retry when one dies
            compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=2),
            num_cpus=1,
            memory=worker_memory,
            runtime_env=env,
            max_task_retries=MAX_TASK_RETRIES,
        )
        try:
            for row in dataset.iter_rows():
                if summary.first_result is None:
                    summary.first_result = time.monotonic() - started
                    mark("driver", "first result received")
                if row["line"]:
                    tally.finish(json.loads(row["line"]))
                else:
                    summary.resumed += 1
        except KeyboardInterrupt:
            summary.interrupted = True
        except BatchError:
            raise
        except Exception as exc:
            root = _root_cause(exc)
            if isinstance(root, BatchError):
                raise BatchError(str(root).splitlines()[0]) from None
            detail = str(root).splitlines()[0][:500] if str(root) else ""
            raise BatchError(
                f"the Ray run stopped: {type(root).__name__}: {detail}. Files finished so far "
                "are in the report; run the same command again to finish"
            ) from exc
        finally:
            CrashNotes.forget_run(run_id)
    summary.seconds = time.monotonic() - started
    mark("driver", "last result received", files=summary.processed)
    return summary


def _check_exists(given: str) -> None:
    if is_url(given):
        from app.batch.storage import _filesystem

        fs, path = _filesystem(given)
        if not fs.exists(path):
            raise BatchError(f"{given}: no such object or prefix")
    elif not os.path.exists(given.removeprefix("file://")):
        raise BatchError(f"{given}: no such file or directory")


def _root_cause(exc: BaseException) -> BaseException:
    """The exception a Ray task raised, under Ray's and Ray Data's wrappers."""
    for _ in range(10):
        inner = getattr(exc, "cause", None)
        if not isinstance(inner, BaseException):
            inner = exc.__cause__
        if inner is None or inner is exc:
            break
        exc = inner
    return exc
