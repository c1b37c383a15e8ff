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

from app.batch.backend import (
    Backend,
    BackendError,
    Labelled,
    Propagated,
    build_state,
    header,
    pick_identity,
)
from app.batch.discovery import discover, remove_partials
from app.batch.ids import bump_id, derive_id, identity_salt, same_family
from app.batch.journal import Journal
from app.batch.library import LibraryBackend
from app.batch.options import (
    COMMANDS,
    DONE,
    LINE_KEYS,
    MAX_CRASHES,
    MAX_FAILURES_SHOWN,
    PARTIAL_SUFFIX,
    REPORT_VERSION,
    BatchError,
    BatchOptions,
    Summary,
    Task,
    failure_text,
)
from app.batch.pool import Tally, run
from app.batch.server import ServerBackend
from app.batch.worker import Worker

__all__ = [
    "COMMANDS",
    "DONE",
    "LINE_KEYS",
    "MAX_CRASHES",
    "MAX_FAILURES_SHOWN",
    "PARTIAL_SUFFIX",
    "REPORT_VERSION",
    "Backend",
    "BackendError",
    "BatchError",
    "BatchOptions",
    "Journal",
    "Labelled",
    "LibraryBackend",
    "Propagated",
    "ServerBackend",
    "Summary",
    "Tally",
    "Task",
    "Worker",
    "build_state",
    "bump_id",
    "derive_id",
    "discover",
    "failure_text",
    "header",
    "identity_salt",
    "pick_identity",
    "remove_partials",
    "run",
    "same_family",
]
