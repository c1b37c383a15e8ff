"""Batch engine behind ``aigc-label label|verify|propagate``: many files, several processes.

What this module owns: finding the files (directories walked recursively,
``--include``/``--exclude`` globs, hidden entries skipped), mapping each input
to its output (the input tree mirrored under ``--out``, or the file itself with
``--in-place``), running one task per file in a pool of worker processes, the
JSONL report, and the resume/idempotence rules below. What a label *is* stays
in ``labelers``/``detectors``; this module only calls them (or the HTTP service
in ``--server`` mode) and writes files safely.

Workers
    A ``ProcessPoolExecutor`` (fork start method on Linux, so the libraries
    imported once in the parent are shared). The parent prepares everything
    that must happen once before the workers start: schema migration, the
    development key and development C2PA credentials (``State.build``), and
    the choice of identity, which fails fast on a bad ``--key-name``. It then
    closes its own database connections (a SQLite handle must not cross a
    fork) and each worker builds its own ``State`` (ledger, signers) once, in
    the pool initializer. The SQLite ledger is shared safely by WAL and a busy
    timeout (app/ledger.py). The parallelism is across files, so the CLI
    gives each worker one BLAS thread (``OPENBLAS_NUM_THREADS=1``) rather
    than letting every worker start one per core. Workers ignore SIGINT:
    Ctrl-C is the parent's decision (it stops handing out files, lets the
    running ones finish and journals them).

Never a partial output
    The output is built in memory, written to ``.<name>.<random>.aigc-partial``
    in the destination directory, fsynced, then ``os.replace``d over the
    destination and the directory fsynced. A kill leaves at most a hidden
    ``*.aigc-partial`` file, which the next run deletes before it starts
    (so: one run per output tree at a time).

Order of one label
    label in memory -> write + fsync the temporary file -> ledger insert ->
    rename into place -> journal line. The ledger insert comes before the
    rename so that a labelled file never exists without its ledger entry.

Deterministic ProduceIDs
    A batch ProduceID is a ULID (26 Crockford base32 characters, the form the
    text watermark carries most compactly). Its 48-bit time field is the
    input file's modification time (when the content was made) and its
    80-bit "random" field is HMAC-SHA256 over the destination path and the
    SHA-256 of the input, keyed with a salt derived from the identity (the
    producer code; in ``--server`` mode the API key's hash). Labelling the
    same content to the same place as the same producer therefore always
    asks for the same ProduceID, with or without a report, so an
    interrupted run can be recognised from the ledger and the outputs alone.
    The salt is written to the report header for reference.

Resume and idempotence (three layers, cheapest first)
    1. The journal: the JSONL report, appended and flushed per file. On a
       rerun with the same ``--report``, inputs with a finished line
       (labelled / skipped / verified / propagated) are not handed to a
       worker at all. Failed files are tried again.
    2. The output: with ``--out``, a destination that exists and carries a
       ProduceID of the same family (same 80-bit HMAC field: the same input,
       destination and identity; the time field is ignored so a ``touch`` on
       the input does not relabel it) that the ledger knows is skipped
       ("already labelled"). In ``--in-place`` mode the file itself is
       checked: if it carries a record (for plain text: a text watermark)
       whose ProduceID our ledger issued to this producer, or its SHA-256 is
       the content of a ledger entry, it is skipped. A file is never
       labelled twice, even without a report.
    3. The ledger: a kill -9 between the ledger insert and the rename leaves
       the ledger entry but no output. The rerun derives the same ProduceID,
       the ledger answers DuplicateProduceID, and the output is written with
       that same ProduceID (reported with a note): one ledger entry per input.
       The ledger row then holds the SHA-256 of the first attempt's bytes,
       which may differ from the file finally written (C2PA signatures are
       not deterministic). In ``--server`` mode the service refuses a
       ProduceID it already issued (409) and cannot hand the lost output
       back, so the task retries with the time field advanced by 1 ms: the
       output is still recognised by layer 2 afterwards, at the cost of one
       ledger entry whose file never left the service.

Propagation (platform write-back) follows the same shape with PropagateIDs:
derived the same way, a destination whose record already carries our
platform code and a PropagateID of the same family is skipped.

Failures (corrupt, unsupported, over a limit, any unexpected exception, even
a worker process that dies) become a ``failed`` line with the error and never
stop the run; the exit status is non-zero when any file failed.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import hashlib
import hmac
import json
import logging
import os
import secrets
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

COMMANDS = ("label", "verify", "propagate")
#: outcomes that finish a file: a rerun with the same report does not touch it again
DONE = frozenset({"labelled", "skipped", "verified", "propagated"})
PARTIAL_SUFFIX = ".aigc-partial"
#: the fields every file line of the report has, in this order (others follow)
LINE_KEYS = ("path", "output", "media_type", "produce_id", "outcome", "error", "error_kind")
REPORT_VERSION = 1
#: a task whose worker process died this many times is reported failed, not retried
MAX_CRASHES = 2
#: failures listed again in the closing summary (each is printed as it happens too)
MAX_FAILURES_SHOWN = 20


class BatchError(Exception):
    """The batch cannot start: bad arguments, identity, report or output tree."""


@dataclass(frozen=True)
class BatchOptions:
    """Everything a worker needs, picklable (sent once to each worker)."""

    command: str
    # label (mirrors POST /v1/label)
    explicit: str = "on"  # on | none
    position: str | None = None
    pages: str = "all"
    wording: str | None = None
    watermark: bool = True
    c2pa: bool = True
    omit_reason: str | None = None
    # verify / propagate
    declared_ai: bool = False
    add_explicit: bool = False  # propagate: draw the visible label when none shows
    # identity and backend
    key_name: str | None = None
    server: str | None = None
    api_key: str | None = None
    in_place: bool = False


@dataclass(frozen=True)
class Task:
    """One input file and where its result goes."""

    src: str  # path as the user will recognise it (input root joined with the relative path)
    dest: str | None  # output path (None for verify)
    crashes: int = 0


@dataclass
class Summary:
    counts: Counter[str] = field(default_factory=Counter)
    classes: Counter[str] = field(default_factory=Counter)  # verify/propagate: Art. 6 classes
    resumed: int = 0  # finished in an earlier run (journal), not looked at again
    seconds: float = 0.0
    interrupted: bool = False
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # path, kind, detail
    #: Ray engine: seconds until the first result (cluster workers starting up)
    first_result: float | None = None

    @property
    def processed(self) -> int:
        return sum(self.counts.values())

    @property
    def failed(self) -> int:
        return self.counts.get("failed", 0)

    @property
    def rate(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "summary",
            "counts": dict(sorted(self.counts.items())),
            "classifications": dict(sorted(self.classes.items())),
            "processed": self.processed,
            "resumed": self.resumed,
            "seconds": round(self.seconds, 3),
            "files_per_second": round(self.rate, 2),
            "interrupted": self.interrupted,
        } | ({} if self.first_result is None else {"first_result": round(self.first_result, 3)})

    def text(self, command: str) -> str:
        parts = [f"{n} {outcome}" for outcome, n in sorted(self.counts.items())] or ["0 files"]
        line = f"{command}: " + ", ".join(parts)
        if self.classes:
            line += " (" + ", ".join(f"{c} {n}" for c, n in sorted(self.classes.items())) + ")"
        line += f" in {self.seconds:.1f} s ({self.rate:.1f} files/s)"
        if self.resumed:
            line += f"; {self.resumed} already done in an earlier run"
        if self.interrupted:
            line += "; INTERRUPTED: run the same command again to finish"
        shown = self.failures[:MAX_FAILURES_SHOWN]
        if shown:
            line += "\nfailed:" + "".join(failure_text(*f, indent="\n  ") for f in shown)
            if len(self.failures) > len(shown):
                line += f"\n  ... and {len(self.failures) - len(shown)} more (see --report)"
        return line


def failure_text(path: str, kind: str, detail: str, indent: str = "") -> str:
    """One failure as the user reads it: which file, what kind of problem, why."""
    return f"{indent}{path}: {kind}: {detail}"


# ------------------------------------------------------------------ discovery
def discover(
    inputs: Iterable[str],
    out: str | None,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    skip: Iterable[str] = (),
) -> list[Task]:
    """The files to process, each with its destination (``out`` None: no output/in place).

    A directory's contents go straight under ``out`` (like ``cp -r dir/. out``),
    a file given by name goes to ``out/<its name>``. Hidden files and
    directories (name starting with a dot) are skipped, and so are ``out``
    itself when it lies inside an input and the paths in ``skip`` (the report).
    """
    out_abs = os.path.abspath(out) if out else None
    skip_abs = {os.path.abspath(p) for p in skip}
    tasks: list[Task] = []
    for given in inputs:
        if not os.path.exists(given):
            raise BatchError(f"{given}: no such file or directory")
        if os.path.isdir(given):
            if out_abs and os.path.abspath(given) == out_abs:
                raise BatchError(
                    f"--out {out} is the input directory itself; use --in-place to relabel "
                    "files where they are"
                )
            for rel in _walk(given, include or [], exclude or [], out_abs, skip_abs):
                dest = os.path.join(out, rel) if out else None
                tasks.append(Task(os.path.join(given, rel), dest))
        elif os.path.isfile(given):
            dest = os.path.join(out, os.path.basename(given)) if out else None
            tasks.append(Task(given, dest))
        else:
            raise BatchError(f"{given}: not a regular file or directory")
    seen: dict[str, str] = {}
    for task in tasks:
        if task.dest and os.path.abspath(task.dest) == os.path.abspath(task.src):
            raise BatchError(
                f"{task.src} would be overwritten by its own output; use --in-place to relabel "
                "files where they are"
            )
        key = os.path.abspath(task.dest or task.src)
        if key in seen:
            what = "output" if task.dest else "input"
            raise BatchError(f"{seen[key]} and {task.src} map to the same {what} {key}")
        seen[key] = task.src
    return tasks


def _walk(
    root: str,
    include: list[str],
    exclude: list[str],
    out_abs: str | None,
    skip: set[str],
    walk: Callable[[str], Iterable[tuple[str, list[str], list[str]]]] = os.walk,
    full: Callable[[str, str], str] = lambda d, n: os.path.abspath(os.path.join(d, n)),
) -> Iterator[str]:
    """Relative paths of the files under ``root``, lazily, one directory at a time.

    ``walk`` is ``os.walk`` or an fsspec filesystem's ``walk`` (the Ray engine,
    app/storage.py), ``full`` the place of a name in a directory as ``out_abs``
    and ``skip`` spell it.
    """
    for dirpath, dirnames, filenames in walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        kept = []
        for d in sorted(dirnames):
            rel = _rel(rel_dir, d)
            if d.startswith(".") or full(dirpath, d) == out_abs or _matches(rel, d, exclude):
                continue
            kept.append(d)
        dirnames[:] = kept  # prune in place: the walk descends only into these
        for name in sorted(filenames):
            rel = _rel(rel_dir, name)
            if name.startswith(".") or full(dirpath, name) in skip:
                continue
            if include and not _matches(rel, name, include):
                continue
            if _matches(rel, name, exclude):
                continue
            yield rel


def _rel(rel_dir: str, name: str) -> str:
    return name if rel_dir == "." else os.path.join(rel_dir, name)


def _matches(rel: str, name: str, patterns: list[str]) -> bool:
    """A pattern with a slash matches the relative path, one without the name alone."""
    posix = rel.replace(os.sep, "/")
    return any(fnmatch.fnmatchcase(posix if "/" in p else name, p) for p in patterns)


def remove_partials(roots: Iterable[str]) -> int:
    """Delete temporary files an interrupted run left behind; how many."""
    removed = 0
    for root in roots:
        if not os.path.isdir(root):
            continue
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                if name.startswith(".") and name.endswith(PARTIAL_SUFFIX):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(dirpath, name))
                        removed += 1
    return removed


# -------------------------------------------------------------------- journal
class Journal:
    """The JSONL report, which doubles as the journal a rerun resumes from.

    Line kinds (``type``): ``header`` once per run, ``file`` once per file
    processed, ``summary`` at the end of a run. File lines carry ``path``,
    ``output``, ``media_type``, ``produce_id``, ``outcome``, ``error``,
    ``error_kind`` and, per command, more (``classification`` for verify).
    """

    def __init__(self, path: str | None, header: dict[str, Any]) -> None:
        self.path = path
        self._done: set[str] = set()
        self._fh: IO[str] | None = None
        self.header = header
        if path is None:
            return
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (kept open for the run)
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise BatchError(f"report {path} is in use by another aigc-label run") from None
        fh.seek(0)
        self._load(fh.read(), path)
        self._fh = fh
        self._write(self.header)

    def _load(self, text: str, path: str) -> None:
        cwd = os.getcwd()
        lines = text.splitlines()
        for n, raw in enumerate(lines, 1):
            try:
                line = json.loads(raw)
            except json.JSONDecodeError:
                if n == len(lines):  # the last line of a killed run may be cut short
                    continue
                raise BatchError(f"report {path} line {n} is not JSON") from None
            kind = line.get("type")
            if kind == "header":
                if line.get("command") != self.header["command"]:
                    raise BatchError(
                        f"report {path} belongs to a {line.get('command')!r} run, not "
                        f"{self.header['command']!r}: use another --report"
                    )
                cwd = line.get("cwd", cwd)
            elif kind == "file" and line.get("outcome") in DONE:
                given = line["path"]
                self._done.add(
                    canonical_path(given if "://" in given else os.path.join(cwd, given))
                )
        if text and not text.endswith("\n"):
            self._fh_needs_newline = True

    def done_keys(self) -> set[str]:
        """The inputs (``canonical_path``) a finished line covers."""
        return set(self._done)

    def is_done(self, task: Task) -> bool:
        return canonical_path(task.src) in self._done

    def _write(self, line: dict[str, Any]) -> None:
        if self._fh is None:
            return
        if getattr(self, "_fh_needs_newline", False):
            self._fh.write("\n")  # end a line a killed run cut short
            self._fh_needs_newline = False
        self._fh.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
        # flushed to the OS per line: a kill -9 of this process loses nothing
        self._fh.flush()

    def record(self, line: dict[str, Any]) -> None:
        ordered = {"type": "file", **{k: line.get(k) for k in LINE_KEYS}}
        self._write(ordered | line)

    def close(self, summary: Summary | None = None) -> None:
        if self._fh is None:
            return
        if summary is not None:
            self._write(summary.to_dict())
        os.fsync(self._fh.fileno())
        self._fh.close()
        self._fh = None


# -------------------------------------------------------------- ProduceIDs
_ULID_RANDOM_CHARS = 16  # the last 16 of 26 ULID characters are the 80-bit field


def derive_id(salt: bytes, dest: str, content_sha256: str, mtime_ns: int) -> str:
    """The batch ProduceID/PropagateID for one input: see the module docstring."""
    from labelers.record import encode_ulid

    place = canonical_path(dest).encode("utf-8", "surrogateescape")
    msg = place + b"\0" + content_sha256.encode()
    mac = hmac.new(salt, msg, hashlib.sha256).digest()
    millis = (mtime_ns // 1_000_000) & ((1 << 48) - 1)
    return encode_ulid(millis << 80 | int.from_bytes(mac[:10], "big"))


def same_family(candidate: str, expected: str) -> bool:
    """True when ``candidate`` was derived for the same input, place and identity."""
    return (
        len(candidate) == len(expected) == 26
        and candidate[-_ULID_RANDOM_CHARS:] == expected[-_ULID_RANDOM_CHARS:]
    )


def bump_id(produce_id: str) -> str:
    """The same family, time field advanced by one millisecond (server-mode retry)."""
    from labelers.record import decode_ulid, encode_ulid

    value = decode_ulid(produce_id)
    assert value is not None
    return encode_ulid((value + (1 << 80)) % (1 << 128))


def canonical_path(path: str) -> str:
    """One spelling per place: a local path made absolute, a URL as given (``file://`` local).

    The place is part of a derived ID and the journal's key, so the same file
    named relatively, absolutely or as ``file://`` gets the same ID.
    """
    if path.startswith("file://"):
        path = path[len("file://") :]
    elif "://" in path:
        return path.rstrip("/")
    return os.path.abspath(path)


def identity_salt(code: str) -> bytes:
    return hashlib.sha256(b"aigc-label batch ids v1\0" + code.encode()).digest()


# ------------------------------------------------------------- safe writing
def atomic_write(dest: str, data: bytes, mode: int = 0o644) -> str:
    """Write ``data`` to a hidden temporary file beside ``dest``, fsynced; its path.

    The caller renames it into place with :func:`commit_file` (or deletes it).
    """
    directory = os.path.dirname(os.path.abspath(dest))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=directory, prefix=f".{os.path.basename(dest)}.", suffix=PARTIAL_SUFFIX
    )
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode & 0o777)
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp


def commit_file(tmp: str, dest: str) -> None:
    os.replace(tmp, dest)
    fd = os.open(os.path.dirname(os.path.abspath(dest)), os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a power cut
    finally:
        os.close(fd)


@dataclass(frozen=True)
class FileInfo:
    size: int
    mtime_ns: int
    mode: int  # permission bits an output inherits (local files)


class LocalFiles:
    """Where a worker reads inputs and publishes outputs: this machine's filesystem.

    ``stage`` writes the finished bytes where they are not yet visible at
    ``dest`` (a hidden fsynced temporary file), ``publish`` makes them appear
    there in one step (a rename). The worker commits the ledger row between
    the two. The Ray engine passes another implementation for fsspec URLs
    (app/storage.py), with the same three steps.
    """

    def info(self, path: str) -> FileInfo:
        st = os.stat(path)
        return FileInfo(st.st_size, st.st_mtime_ns, st.st_mode)

    def read(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def stage(self, dest: str, data: bytes, mode: int) -> Any:
        return atomic_write(dest, data, mode)

    def publish(self, staged: Any, dest: str) -> None:
        commit_file(staged, dest)

    def discard(self, staged: Any) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staged)


# ----------------------------------------------------------------- the pool
def run(
    options: BatchOptions,
    tasks: list[Task],
    journal: Journal,
    workers: int,
    progress: bool,
    on_line: Callable[[dict[str, Any]], None] | None = None,
    backend: Backend | None = None,
) -> Summary:
    """Process ``tasks`` in ``workers`` processes; journal each file; the summary.

    ``backend`` is the one the caller prepared in this process: a single file
    is handled with it right here (a pool would fork and build a second
    ledger, key store and signer for one file, which is most of what a
    one-shot run would cost); for a pool it is closed first, since database
    connections must not cross a fork.
    """
    summary = Summary()
    todo = [t for t in tasks if not journal.is_done(t)]
    summary.resumed = len(tasks) - len(todo)
    started = time.monotonic()
    bar = _progress_bar(len(todo), progress)
    finish = finisher(journal, summary, bar, on_line)

    queue = list(reversed(todo))  # pop() from the end keeps the walk order
    try:
        if backend is not None and len(todo) == 1:
            # one file: handled here, not worth a process pool and a second set of keys
            finish(Worker(options, backend).handle(todo[0]))
        else:
            if backend is not None:
                backend.close()
            _preload()
            workers = max(1, min(workers, len(todo)))
            window = workers * 4  # bounded in-flight work: quick to stop, little memory
            while queue:
                crashed = _drain(options, queue, workers, window, finish)
                for task in crashed:
                    if task.crashes + 1 >= MAX_CRASHES:
                        finish(
                            _failed(
                                task,
                                "worker-crashed",
                                "the worker process died while handling this file "
                                f"({MAX_CRASHES} times)",
                            )
                        )
                    else:
                        queue.append(Task(task.src, task.dest, task.crashes + 1))
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        if bar is not None:
            bar.close()
    summary.seconds = time.monotonic() - started
    return summary


def finisher(
    journal: Journal,
    summary: Summary,
    bar: Any = None,
    on_line: Callable[[dict[str, Any]], None] | None = None,
) -> Callable[[dict[str, Any]], None]:
    """What happens to each finished file's line, whichever engine ran it."""

    def finish(line: dict[str, Any]) -> None:
        journal.record(line)
        summary.counts[line["outcome"]] += 1
        if line.get("classification"):
            summary.classes[line["classification"]] += 1
        if line["outcome"] == "failed":
            failure = (line["path"], line.get("error_kind") or "error", line.get("error") or "")
            summary.failures.append(failure)
            message = "aigc-label: failed: " + failure_text(*failure)
            if bar is not None:
                bar.write(message, file=sys.stderr)
            else:
                print(message, file=sys.stderr, flush=True)
        if bar is not None:
            bar.update(1)
        if on_line is not None:
            on_line(line)

    return finish


def _drain(
    options: BatchOptions,
    queue: list[Task],
    workers: int,
    window: int,
    finish: Callable[[dict[str, Any]], None],
) -> list[Task]:
    """Run the queue in one pool; return the tasks in flight if the pool broke."""
    import concurrent.futures as cf  # here: a one-file run never starts a pool
    import multiprocessing

    context = (
        multiprocessing.get_context("fork")
        if "fork" in multiprocessing.get_all_start_methods()
        else None
    )
    pool = cf.ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(options,)
    )
    running: dict[cf.Future[dict[str, Any]], Task] = {}
    try:
        while queue or running:
            while queue and len(running) < window:
                task = queue.pop()
                running[pool.submit(_run_task, task)] = task
            done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            if any(isinstance(f.exception(), cf.process.BrokenProcessPool) for f in done):
                # a worker died (a crash in native code): keep what finished, retry the rest
                cf.wait(running)
                lost = []
                for future, task in running.items():
                    if future.exception() is None:
                        finish(future.result())
                    else:
                        lost.append(task)
                return lost
            for future in done:
                del running[future]
                finish(future.result())
        return []
    except KeyboardInterrupt:
        # stop handing out files; the ones being labelled finish and are journaled
        for future in running:
            future.cancel()
        for future in running:
            if not future.cancelled():
                with contextlib.suppress(Exception):
                    finish(future.result())
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _preload() -> None:
    """Import the heavy libraries once in the parent: forked workers share them."""
    import importlib

    for module in ("detectors.files", "labelers.pipeline", "labelers.watermark.text"):
        importlib.import_module(module)


def _progress_bar(total: int, wanted: bool) -> Any:
    if not wanted or not sys.stderr.isatty() or total == 0:
        return None
    from tqdm import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: the pool may fork again after a crash
    return tqdm(total=total, unit="file", file=sys.stderr, dynamic_ncols=True, smoothing=0.1)


def _failed(task: Task, kind: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "path": task.src,
        "output": task.dest,
        "media_type": extra.pop("media_type", None),
        "produce_id": None,
        "outcome": "failed",
        "error": detail,
        "error_kind": kind,
        **extra,
    }


# ---------------------------------------------------------------- workers
_WORKER: Worker | None = None


def _init_worker(options: BatchOptions) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's decision
    global _WORKER
    # the parent already showed State.build's one-time notices; once per worker is noise
    logging.disable(logging.WARNING)
    try:
        _WORKER = Worker(options)
    finally:
        logging.disable(logging.NOTSET)


def _run_task(task: Task) -> dict[str, Any]:
    assert _WORKER is not None
    return _WORKER.handle(task)


class Worker:
    """Processes one file at a time; built once per worker process."""

    def __init__(
        self, options: BatchOptions, backend: Backend | None = None, files: Any = None
    ) -> None:
        self.options = options
        if backend is None:
            backend = ServerBackend(options) if options.server else LibraryBackend(options)
        self.backend: Backend = backend
        self.files = files if files is not None else LocalFiles()

    def handle(self, task: Task) -> dict[str, Any]:
        from labelers.errors import AigcError

        started = time.monotonic()
        try:
            line = getattr(self, "_" + self.options.command)(task)
        except AigcError as exc:
            line = _failed(task, exc.kind, exc.detail)
        except BackendError as exc:
            line = _failed(task, exc.kind, exc.detail)
        except OSError as exc:
            line = _failed(task, "io-error", f"{exc.filename or task.src}: {exc.strerror or exc}")
        except Exception as exc:  # a bug must not stop the other files
            tb = traceback.extract_tb(exc.__traceback__)[-1]
            line = _failed(
                task,
                "internal-error",
                f"{type(exc).__name__}: {exc} (at {tb.filename}:{tb.lineno})",
            )
        line["seconds"] = round(time.monotonic() - started, 4)
        return line

    # ------------------------------------------------------------ commands
    def _read(self, path: str) -> tuple[bytes, FileInfo]:
        st = self.files.info(path)
        limit = self.backend.max_bytes
        if st.size > limit:
            from labelers.errors import LimitExceeded

            raise LimitExceeded(
                f"the file is {st.size} bytes, over the limit of {limit} bytes "
                "(AIGC_MAX_UPLOAD_BYTES)"
            )
        return self.files.read(path), st

    def _publish(self, dest: str, data: bytes, mode: int, commit: Callable[[], Any]) -> Any:
        """Stage the finished bytes, run ``commit`` (the ledger row), then publish; its result."""
        staged = self.files.stage(dest, data, mode)
        try:
            result = commit()
            self.files.publish(staged, dest)
        except BaseException:
            self.files.discard(staged)
            raise
        return result

    def _media_type_of(self, path: str) -> str | None:
        # the whole file: a ZIP's part list may sit at its end
        return _media_type(self.files.read(path))

    def _label(self, task: Task) -> dict[str, Any]:
        data, st = self._read(task.src)
        sha = hashlib.sha256(data).hexdigest()
        dest = task.dest or task.src
        base = {"path": task.src, "output": dest, "sha256": sha, "error": None}
        if self.options.in_place:
            pid = self.backend.issued_to_us(data, sha)
            if pid is not None:
                return _skipped(base, _media_type(data), produce_id=pid, note="already labelled")
        expected = derive_id(self.backend.salt, dest, sha, st.mtime_ns)
        if not self.options.in_place and self.files.exists(dest):
            found = self._carried_family(dest, expected, record_field="produce_id")
            if found is not None and self.backend.known_produce_id(found):
                return _skipped(
                    base, self._media_type_of(dest), produce_id=found, note="already labelled"
                )
        labelled = self.backend.label(data, expected, _basename(task.src))
        note = self._publish(dest, labelled.data, st.mode, labelled.commit)
        line = {
            **base,
            "media_type": labelled.media_type,
            "produce_id": labelled.produce_id,
            "outcome": "labelled",
            "explicit": labelled.explicit,
            "watermark": labelled.watermark,
            "c2pa": labelled.c2pa,
        }
        if note:
            line["note"] = note
        return line

    def _verify(self, task: Task) -> dict[str, Any]:
        data, _st = self._read(task.src)
        report = self.backend.verify(data, _basename(task.src))
        record = report.get("record") or {}
        return {
            "path": task.src,
            "output": None,
            "media_type": report.get("media_type"),
            "produce_id": record.get("ProduceID") or None,
            "outcome": "verified",
            "error": None,
            "classification": report.get("classification"),
            "rule": report.get("rule"),
            "findings": [f.get("code") for f in report.get("findings", [])],
        }

    def _propagate(self, task: Task) -> dict[str, Any]:
        data, st = self._read(task.src)
        sha = hashlib.sha256(data).hexdigest()
        dest = task.dest or task.src
        base = {"path": task.src, "output": dest, "sha256": sha, "error": None}
        expected = derive_id(self.backend.salt, dest, sha, st.mtime_ns)
        check = task.src if self.options.in_place else dest
        if self.files.exists(check):
            found = self._carried_family(check, expected, record_field="propagate_id")
            if found is None and self.options.in_place:
                found = self.backend.propagated_by_us(data)
            if found is not None:
                return _skipped(
                    base, self._media_type_of(check), propagate_id=found, note="already propagated"
                )
        result = self.backend.propagate(data, expected, _basename(task.src))
        line = {
            **base,
            "media_type": result.media_type,
            "produce_id": result.produce_id,
            "classification": result.classification,
        }
        if result.data is None:  # nothing says AI: the file is left as it is
            if not self.options.in_place:
                self._publish(dest, data, st.mode, lambda: None)
            note = "no AI indication: no record written" + (
                "" if self.options.in_place else "; copied unchanged"
            )
            return {**line, "outcome": "propagated", "propagate_id": None, "note": note}
        note = self._publish(dest, result.data, st.mode, result.commit)
        line.update(
            outcome="propagated",
            propagate_id=result.propagate_id,
            record_created=result.created,
            explicit=result.explicit,
            c2pa=result.c2pa,
        )
        if note:
            line["note"] = note
        return line

    def _carried_family(self, path: str, expected: str, record_field: str) -> str | None:
        """An ID of ``expected``'s family that the file at ``path`` carries, if any."""
        try:
            data, _ = self._read(path)
        except Exception:
            return None
        for found in carried_ids(data, self.backend.limits, record_field):
            if same_family(found, expected):
                return found
        return None


def _skipped(base: dict[str, Any], media_type: str | None, **extra: Any) -> dict[str, Any]:
    return {"produce_id": None, **base, "media_type": media_type, "outcome": "skipped", **extra}


def _media_type(data: bytes) -> str | None:
    from labelers.errors import AigcError
    from labelers.formats import sniff

    try:
        return sniff(data)
    except AigcError:
        return None


def _basename(path: str) -> str:
    """The file name of a path or URL (sent to the service with the bytes)."""
    return path.rstrip("/").rsplit("/", 1)[-1] if "://" in path else os.path.basename(path)


def carried_ids(data: bytes, limits: Any, record_field: str = "produce_id") -> list[str]:
    """IDs the file carries: from its metadata records, or its text watermark (plain text)."""
    from labelers.errors import AigcError
    from labelers.formats import get_handler, sniff
    from labelers.watermark import text as text_watermark

    try:
        media_type = sniff(data)
        if media_type == "text/plain":
            if record_field != "produce_id":
                return []
            return text_watermark.decode(data.decode("utf-8", errors="replace"))
        meta = get_handler(media_type).read(data, limits)
    except AigcError:
        return []
    ids = [getattr(f.record, record_field) for f in meta.records if f.record is not None]
    return [i for i in ids if i]


# ------------------------------------------------------------- backends
class BackendError(Exception):
    """A file the backend refused or could not handle (server mode: a problem response)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@dataclass
class Labelled:
    data: bytes
    media_type: str
    produce_id: str
    explicit: str
    watermark: str
    c2pa: str
    commit: Callable[[], str | None]  # ledger insert (library mode); returns a note


@dataclass
class Propagated:
    data: bytes | None  # None: nothing to write (classification none)
    media_type: str
    produce_id: str | None
    propagate_id: str | None
    classification: str
    created: bool
    explicit: str
    c2pa: str
    commit: Callable[[], str | None]


class Backend:
    """What a worker needs from the library or from the service."""

    salt: bytes
    limits: Any
    max_bytes: int

    def label(self, data: bytes, produce_id: str, name: str) -> Labelled:
        raise NotImplementedError

    def verify(self, data: bytes, name: str) -> dict[str, Any]:
        raise NotImplementedError

    def propagate(self, data: bytes, propagate_id: str, name: str) -> Propagated:
        raise NotImplementedError

    def known_produce_id(self, produce_id: str) -> bool:
        """Whether the ledger holds ``produce_id`` (server mode: True if it cannot tell)."""
        raise NotImplementedError

    def issued_to_us(self, data: bytes, sha256: str) -> str | None:
        """In-place: the ProduceID if ``data`` is already a label we issued."""
        raise NotImplementedError

    def propagated_by_us(self, data: bytes) -> str | None:
        """In-place propagate: the PropagateID if our platform already wrote back."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections (before a fork: they must not be shared with workers)."""


def header(options: BatchOptions, identity: dict[str, Any], salt: bytes) -> dict[str, Any]:
    """The report header line for this run."""
    opts = {k: v for k, v in asdict(options).items() if k not in ("api_key",)}
    return {
        "type": "header",
        "version": REPORT_VERSION,
        "command": options.command,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cwd": os.getcwd(),
        "run": secrets.token_hex(8),
        "identity": identity,
        "id_salt": salt.hex(),
        "options": opts,
    }


#: Art. 6 class -> the Label a platform writes when it creates the record
_PERMISSION = {"label": "label", "verify": "verify", "propagate": "propagate"}


def pick_identity(keys: Any, options: BatchOptions) -> Any:
    """The API-key identity a library-mode run acts as (same rules as the service).

    ``--key-name`` picks one by name; without it the only identity allowed to
    do the command is used (development mode has exactly one).
    """
    identities = keys.identities()
    permission = _PERMISSION[options.command]
    if options.key_name is not None:
        named = [i for i in identities if i.name == options.key_name]
        if not named:
            known = ", ".join(sorted(i.name for i in identities))
            raise BatchError(f"no API key named {options.key_name!r} (configured: {known})")
        identity = named[0]
        if not identity.can(permission):
            raise BatchError(f"API key {identity.name!r} lacks the {permission!r} permission")
    else:
        able = [i for i in identities if i.can(permission)]
        if not able:
            raise BatchError(f"no configured API key has the {permission!r} permission")
        if len(able) > 1:
            names = ", ".join(sorted(i.name for i in able))
            raise BatchError(
                f"several API keys may {permission} ({names}): pick one with --key-name"
            )
        identity = able[0]
    if (
        options.command == "label"
        and options.explicit == "none"
        and not identity.can("omit_explicit")
    ):
        raise BatchError(
            f"--explicit none needs the 'omit_explicit' permission, which API key "
            f"{identity.name!r} lacks (Measures Art. 9: only under a user agreement, logged)"
        )
    return identity


def build_state() -> Any:
    """``State.build`` from the environment; its one-time notices go to stderr, not stdout."""
    from app.settings import Settings
    from app.state import State

    with contextlib.redirect_stdout(sys.stderr):  # stdout may be carrying a labelled file
        return State.build(Settings())


class LibraryBackend(Backend):
    """Runs the labelling library in this process, with the embedded ledger."""

    def __init__(self, options: BatchOptions, state: Any = None) -> None:
        from labelers.pipeline import FileOptions, parse_positions
        from labelers.visible.wording import resolve_wording

        self.options = options
        self.state = state if state is not None else build_state()
        self.limits = self.state.settings.limits
        self.max_bytes = self.limits.max_bytes
        self.identity = (
            None if options.command == "verify" else pick_identity(self.state.keys, options)
        )
        code = ""
        if self.identity is not None:
            code = (
                self.identity.platform if options.command == "propagate" else self.identity.producer
            ) or ""
        self.salt = identity_salt(code)
        wording = resolve_wording(options.wording)
        self.positions = parse_positions(options.position) if options.position else {}
        self.file_options = FileOptions(
            explicit=options.explicit != "none",
            position=options.position,
            pages=options.pages,
            wording=wording,
            watermark=options.watermark,
            c2pa=options.c2pa,
        )
        self.explicit_options = (
            FileOptions(position=options.position, wording=wording, watermark=False, c2pa=False)
            if options.add_explicit
            else None
        )

    def label(self, data: bytes, produce_id: str, name: str) -> Labelled:
        from app.ledger import DuplicateProduceID, watermark_key
        from labelers.pipeline import label_file
        from labelers.record import Record

        st, identity = self.state, self.identity
        record = Record.first_write(identity.producer, produce_id).validate()
        result = label_file(
            data,
            record,
            _for_kind(self.file_options, self.positions, data),
            st.signer if self.options.c2pa else None,  # no C2PA: never load its library
            watermark_key(produce_id),
            st.settings.software_agent,
            self.limits,
            st.record_signer,
        )

        def commit() -> str | None:
            try:
                st.ledger.record_label(
                    result.record,
                    result.data,
                    result.media_type,
                    identity.name,
                    result.explicit,
                    self.options.omit_reason,
                )
            except DuplicateProduceID:
                return (
                    "ProduceID already in the ledger (issued by an interrupted run); output written"
                )
            return None

        return Labelled(
            result.data,
            result.media_type,
            produce_id,
            result.explicit,
            result.watermark,
            result.c2pa,
            commit,
        )

    def _report(self, data: bytes) -> Any:
        from detectors.files import verify_file

        st = self.state
        return verify_file(
            data,
            st.lookup,
            self.options.declared_ai,
            st.trust_anchors_pem,
            self.limits,
            st.keyring,
        )

    def verify(self, data: bytes, name: str) -> dict[str, Any]:
        return self._report(data).to_dict()

    def propagate(self, data: bytes, propagate_id: str, name: str) -> Propagated:
        from app.ledger import DuplicateProduceID
        from app.platform import check_and_propagate

        st, identity = self.state, self.identity
        report, result = check_and_propagate(
            st,
            data,
            self.options.declared_ai,
            identity.platform,
            propagate_id,
            self.explicit_options and _for_kind(self.explicit_options, self.positions, data),
        )
        cls = report.classification
        produce_id = report.record.produce_id if report.record else None
        if result is None:
            return Propagated(
                None, report.media_type, produce_id, None, cls, False, "none", "off", lambda: None
            )

        def commit() -> str | None:
            args = (result.record, result.data, result.media_type, cls, identity.name)
            try:
                st.ledger.record_propagation(*args)
            except DuplicateProduceID:
                return "PropagateID already in the ledger (an interrupted run); output written"
            return None

        return Propagated(
            result.data,
            result.media_type,
            produce_id,
            result.record.propagate_id,
            cls,
            result.created,
            result.explicit,
            result.c2pa,
            commit,
        )

    def known_produce_id(self, produce_id: str) -> bool:
        entry = self.state.ledger.get(produce_id)
        return entry is not None and entry.producer == self.identity.producer

    def issued_to_us(self, data: bytes, sha256: str) -> str | None:

        for produce_id in carried_ids(data, self.limits):
            if self.known_produce_id(produce_id):
                return produce_id
        # content the ledger recorded as one of our outputs (e.g. text without a watermark)
        return self.state.ledger.find_by_content(sha256, self.identity.producer)

    def propagated_by_us(self, data: bytes) -> str | None:
        return _propagated_by(data, self.identity.platform, self.limits)

    def close(self) -> None:
        self.state.ledger.engine.dispose()


def _for_kind(file_options: Any, positions: dict[str, str], data: bytes) -> Any:
    """``file_options`` with the position ``--position`` gives this file's kind (or default)."""
    if not positions:
        return file_options
    from dataclasses import replace

    return replace(file_options, position=_position_for(positions, data))


def _position_for(positions: dict[str, str], data: bytes) -> str | None:
    """The position ``--position`` gives the kind of file ``data`` is; None: its default."""
    from labelers.pipeline import position_kind

    return positions.get(position_kind(_media_type(data) or "") or "")


def _propagated_by(data: bytes, platform: str | None, limits: Any) -> str | None:
    from labelers.errors import AigcError
    from labelers.formats import get_handler, sniff

    if not platform:
        return None
    try:
        meta = get_handler(sniff(data)).read(data, limits)
    except AigcError:
        return None
    for found in meta.records:
        record = found.record
        if record is not None and record.content_propagator == platform and record.propagate_id:
            return record.propagate_id
    return None


class ServerBackend(Backend):
    """Sends each file to a running service (``--server``) over HTTP."""

    RETRIES = 3

    def __init__(self, options: BatchOptions) -> None:
        import httpx

        from labelers.limits import DEFAULT_LIMITS

        self.options = options
        self.limits = DEFAULT_LIMITS  # for reading outputs back locally
        self.max_bytes = DEFAULT_LIMITS.max_bytes
        key = options.api_key or ""
        self.salt = identity_salt("server:" + hashlib.sha256(key.encode()).hexdigest())
        self.client = httpx.Client(
            base_url=(options.server or "").rstrip("/"),
            headers={"Authorization": f"Bearer {key}"},
            timeout=httpx.Timeout(300.0, connect=10.0),
        )
        self.platform: str | None = None  # learnt from the first write-back
        from labelers.pipeline import parse_positions

        self.positions = parse_positions(options.position) if options.position else {}

    def _post(self, path: str, name: str, data: bytes, form: dict[str, str]) -> Any:
        import httpx

        for attempt in range(self.RETRIES):
            try:
                return self.client.post(
                    path, files={"file": (name, data, "application/octet-stream")}, data=form
                )
            except httpx.TransportError as exc:
                if attempt == self.RETRIES - 1:
                    raise BackendError(
                        "server-unreachable", f"{self.options.server}{path}: {exc}"
                    ) from None
                time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    @staticmethod
    def _problem(response: Any) -> BackendError:
        try:
            body = response.json()
            kind = str(body.get("type", "")).rsplit("/", 1)[-1] or f"http-{response.status_code}"
            detail = str(body.get("detail") or body)
        except ValueError:
            kind, detail = f"http-{response.status_code}", response.text[:500]
        return BackendError(kind, f"server answered {response.status_code}: {detail}")

    def _label_form(self, produce_id: str, data: bytes) -> dict[str, str]:
        o = self.options
        form = {
            "explicit": o.explicit,
            "pages": o.pages,
            "watermark": str(o.watermark).lower(),
            "c2pa": str(o.c2pa).lower(),
            "produce_id": produce_id,
        }
        for key in ("wording", "omit_reason"):
            value = getattr(o, key)
            if value is not None:
                form[key] = value
        position = _position_for(self.positions, data)
        if position is not None:
            form["position"] = position
        return form

    def label(self, data: bytes, produce_id: str, name: str) -> Labelled:
        note = None
        for _ in range(5):
            response = self._post("/v1/label", name, data, self._label_form(produce_id, data))
            if response.status_code == 409:
                # issued before, its output lost with an interrupted run: same family, next ID
                produce_id = bump_id(produce_id)
                note = "ProduceID issued by an interrupted run; labelled again as " + produce_id
                continue
            if response.status_code != 200:
                raise self._problem(response)
            h = response.headers
            return Labelled(
                response.content,
                h.get("content-type", "").split(";")[0].strip(),
                h.get("AIGC-Produce-ID", produce_id),
                h.get("AIGC-Explicit", ""),
                h.get("AIGC-Watermark", ""),
                h.get("AIGC-C2PA", ""),
                lambda note=note: note,
            )
        raise BackendError("duplicate-produce-id", f"the service refused ProduceID {produce_id}")

    def verify(self, data: bytes, name: str) -> dict[str, Any]:
        form = {"declared_ai": str(self.options.declared_ai).lower()}
        response = self._post("/v1/verify", name, data, form)
        if response.status_code != 200:
            raise self._problem(response)
        return response.json()

    def propagate(self, data: bytes, propagate_id: str, name: str) -> Propagated:
        from labelers.record import Record

        o = self.options
        note = None
        for _ in range(5):
            form = {
                "declared_ai": str(o.declared_ai).lower(),
                "propagate_id": propagate_id,
                "add_explicit": str(o.add_explicit).lower(),
            }
            if o.wording is not None:
                form["wording"] = o.wording
            position = _position_for(self.positions, data)
            if position is not None:
                form["position"] = position
            response = self._post("/v1/propagate", name, data, form)
            if response.status_code == 409:
                propagate_id = bump_id(propagate_id)
                note = (
                    "PropagateID issued by an interrupted run; propagated again as " + propagate_id
                )
                continue
            if response.status_code != 200:
                raise self._problem(response)
            h = response.headers
            media_type = h.get("content-type", "").split(";")[0].strip()
            cls = h.get("AIGC-Classification", "")
            if "AIGC-Propagate-ID" not in h:
                return Propagated(
                    None, media_type, None, None, cls, False, "none", "off", lambda: None
                )
            record = Record.parse(h["AIGC-Record"])
            self.platform = record.content_propagator
            return Propagated(
                response.content,
                media_type,
                record.produce_id or None,
                record.propagate_id,
                cls,
                h.get("AIGC-Record-Created") == "true",
                h.get("AIGC-Explicit", ""),
                h.get("AIGC-C2PA", ""),
                lambda note=note: note,
            )
        raise BackendError(
            "duplicate-propagate-id", f"the service refused PropagateID {propagate_id}"
        )

    def known_produce_id(self, produce_id: str) -> bool:
        import httpx

        try:
            response = self.client.get(f"/v1/records/{produce_id}")
        except httpx.TransportError:
            return True  # cannot tell: never label twice
        return response.status_code != 404

    def issued_to_us(self, data: bytes, sha256: str) -> str | None:
        for produce_id in carried_ids(data, self.limits):
            if self.known_produce_id(produce_id):
                return produce_id
        return None

    def propagated_by_us(self, data: bytes) -> str | None:
        return _propagated_by(data, self.platform, self.limits)

    def close(self) -> None:
        self.client.close()
