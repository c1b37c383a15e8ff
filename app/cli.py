"""Command line: ``aigc-label serve | label | verify | propagate``.

``serve`` runs the HTTP service. ``label``, ``verify`` and ``propagate`` run
over files, directories (recursively) or stdin (``-``), in parallel worker
processes, on the library and the embedded ledger, or against a running
service with ``--server``. The batch engine (resume, idempotence, safe
writes) is app/batch.py; this module parses arguments and prints.
"""

from __future__ import annotations

# Only what parsing the arguments needs is imported here: `aigc-label --help`
# and every one-shot run pay for this module's imports, the rest is imported
# where it is used.
import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

POSITION_HELP = (
    "image and video: bottom-right (default), bottom-left, top-right, top-left, bottom, top, "
    "left, right; documents: footer (default) or header; audio: start (default), end or both, "
    "or before or after the clip (it gets longer). "
    "A value applies to the kinds it fits; per kind: image=top-left,video=top,document=header,"
    "audio=end"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="aigc-label", description="Label AI-generated content per GB 45438-2025."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")

    label = sub.add_parser(
        "label",
        help="label files (explicit label, watermark, record, C2PA) and record them in the ledger",
        description="Label files, directory trees or stdin (-). Output mirrors the input tree "
        "under --out; --in-place rewrites the inputs.",
    )
    _common(label, writes=True)
    label.add_argument(
        "--explicit",
        choices=("on", "rhythm", "speech", "none"),
        default="on",
        help='visible/audible label (audio: "rhythm", the default, or "speech"); '
        '"none" needs the omit_explicit permission (logged)',
    )
    label.add_argument("--position", help=POSITION_HELP)
    label.add_argument(
        "--pages", choices=("all", "first"), default="all", help="PDF pages / PPTX slides"
    )
    label.add_argument(
        "--span",
        default="start",
        help="video: how long the label shows: start (the first 3 s, default), start:N "
        "(the first N seconds, N >= 2), whole, start+end",
    )
    label.add_argument(
        "--wording", help="label wording or a preset (zh, zh-short, zh-synthetic, bilingual)"
    )
    label.add_argument(
        "--no-watermark", dest="watermark", action="store_false", help="no invisible watermark"
    )
    label.add_argument("--no-c2pa", dest="c2pa", action="store_false", help="no C2PA manifest")
    label.add_argument("--omit-reason", help="why the explicit label is omitted (Art. 9 log)")

    verify = sub.add_parser(
        "verify",
        help="classify files (confirmed / possible / suspected / none, Measures Art. 6)",
        description="Verify files, directory trees or stdin (-; prints the full report).",
    )
    _common(verify, writes=False)
    verify.add_argument(
        "--declared-ai", action="store_true", help="the uploader declares the content AI-generated"
    )

    propagate = sub.add_parser(
        "propagate",
        help="platform write-back: propagation fields into each file's record",
        description="Judge each file (Art. 6) and write the platform's ContentPropagator / "
        "PropagateID into its record.",
    )
    _common(propagate, writes=True)
    propagate.add_argument(
        "--declared-ai", action="store_true", help="the uploader declares the content AI-generated"
    )
    propagate.add_argument(
        "--add-explicit", action="store_true", help="draw the visible label where none shows"
    )
    propagate.add_argument(
        "--position", help="where --add-explicit draws the label: " + POSITION_HELP
    )
    propagate.add_argument("--wording", help="wording for --add-explicit")

    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    return _batch(parser, args)


def _common(p: argparse.ArgumentParser, writes: bool) -> None:
    p.add_argument("inputs", nargs="+", metavar="PATH", help="files, directories, or - for stdin")
    if writes:
        p.add_argument(
            "-o", "--out", metavar="DIR", help="write results here, mirroring the input tree"
        )
        p.add_argument(
            "--in-place", action="store_true", help="replace the input files (explicit opt-in)"
        )
    p.add_argument(
        "--include",
        action="append",
        metavar="GLOB",
        help="only files matching (name, or relative path if the glob has a /); repeatable",
    )
    p.add_argument("--exclude", action="append", metavar="GLOB", help="skip matches; repeatable")
    p.add_argument(
        "--workers",
        type=int,
        default=len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        help="worker processes (default: the number of cores)",
    )
    p.add_argument(
        "--report",
        metavar="PATH",
        help="JSONL report, one line per file; rerun with the same report to resume",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--server",
        metavar="URL",
        help="use a running service (API key from AIGC_API_KEY) instead of the library",
    )
    p.add_argument(
        "--key-name",
        help="library mode: act as this identity from the configured API keys",
    )
    ray = p.add_argument_group(
        "engine",
        "--engine ray runs the batch on a Ray cluster (pip install 'aigc-label[ray]'); "
        "then PATH, --out and --report may also be fsspec URLs (s3://bucket/prefix)",
    )
    ray.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: a process pool on this machine (default); ray: Ray Data actors",
    )
    ray.add_argument(
        "--address",
        metavar="ADDR",
        help="the Ray cluster to join (host:port, or auto); default RAY_ADDRESS, else a Ray "
        "instance started for this run",
    )
    ray.add_argument(
        "--batch-size",
        type=int,
        default=32,  # rayengine.DEFAULT_BATCH_SIZE (not imported: the CLI starts light)
        metavar="N",
        help="ray: files per actor call (default %(default)s)",
    )
    ray.add_argument(
        "--worker-memory",
        type=int,
        metavar="BYTES",
        help="ray: memory each worker actor reserves for scheduling (default: none)",
    )


def _serve(args: argparse.Namespace) -> int:
    import logging.config

    import uvicorn

    from app.settings import Settings

    settings = Settings()
    if args.workers > 1:
        _metrics_dir(settings.data_dir)  # before app.ops is imported anywhere
    from app.ops import log_config

    config = log_config(settings.log_level)
    logging.config.dictConfig(config)
    # Prepare the data directory, schema and development key once, in this
    # process, so workers start on a migrated ledger and the key prints once.
    from app.state import State

    State.build(settings).prepare()
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=settings.log_level.lower(),
        log_config=config,
        # idle keep-alive connections are closed; on SIGTERM in-flight requests
        # get this long to finish before the workers stop
        timeout_keep_alive=settings.keep_alive_seconds,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )
    return 0


def _metrics_dir(data_dir: Path) -> None:
    """A fresh PROMETHEUS_MULTIPROC_DIR, so /metrics sums every worker's samples."""
    from pathlib import Path

    path = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or data_dir / "metrics")
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in path.glob("*.db"):  # samples of a previous run's processes
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)


# ------------------------------------------------------------------ batch
def _batch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.workers > 1:
        # parallelism is across files: one BLAS thread per worker process, not cores x cores
        # (set before numpy is first imported, which happens below)
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")
    from app import batch
    from app.batch.timeline import mark
    from app.settings import explained

    mark("driver", "batch command parsed")
    writes = args.command in ("label", "propagate")
    stdin = "-" in args.inputs
    if stdin and len(args.inputs) > 1:
        parser.error("- (stdin) cannot be combined with other inputs")
    if writes and stdin and (args.out or args.in_place):
        parser.error("with - (stdin) the result goes to stdout: drop --out / --in-place")
    if writes and not stdin:
        if args.out and args.in_place:
            parser.error("--out and --in-place exclude each other")
        if not args.out and not args.in_place:
            parser.error(
                "say where results go: --out DIR (mirrors the input tree), or --in-place to "
                "replace the input files"
            )
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    urls = [p for p in [*args.inputs, getattr(args, "out", None), args.report] if p]
    if args.engine == "local" and any("://" in p for p in urls):
        parser.error("fsspec URLs (s3://..., file://...) need --engine ray")
    if args.engine == "local" and (args.address or args.worker_memory):
        parser.error("--address and --worker-memory apply to --engine ray")
    if getattr(args, "position", None):
        _check_position(parser, args.position)
    if getattr(args, "span", None):
        from labelers.errors import InvalidOption
        from labelers.kinds.video import check_span

        try:
            check_span(args.span)
        except InvalidOption as exc:
            parser.error(f"--span: {exc.detail}")
    api_key = None
    if args.server:
        api_key = os.environ.get("AIGC_API_KEY")
        if not api_key:
            parser.error("--server needs the API key in the environment variable AIGC_API_KEY")
        if args.key_name:
            parser.error("--key-name applies to library mode; with --server the key decides")

    options = batch.BatchOptions(
        command=args.command,
        explicit=getattr(args, "explicit", "on"),
        position=getattr(args, "position", None),
        pages=getattr(args, "pages", "all"),
        span=getattr(args, "span", "start"),
        wording=getattr(args, "wording", None),
        watermark=getattr(args, "watermark", True),
        c2pa=getattr(args, "c2pa", True),
        omit_reason=getattr(args, "omit_reason", None),
        declared_ai=getattr(args, "declared_ai", False),
        add_explicit=getattr(args, "add_explicit", False),
        key_name=args.key_name,
        server=args.server,
        api_key=api_key,
        in_place=bool(getattr(args, "in_place", False)),
    )
    import logging

    logging.basicConfig(level=logging.WARNING, format="aigc-label: %(levelname)s %(message)s")
    # development mode is announced below with the code actually used
    logging.getLogger("aigc.auth").setLevel(logging.ERROR)

    try:
        backend, identity = _prepare(options)
        if stdin:
            return _stdin(options, backend, args.report)
        out = getattr(args, "out", None)
        if args.engine == "ray":
            mark("driver", "identity, ledger schema and signers prepared")
            return _ray(args, options, backend, identity, out)
        journal_path = args.report
        tasks = batch.discover(
            args.inputs,
            out,
            args.include,
            args.exclude,
            skip=[journal_path] if journal_path else [],
        )
        journal = batch.Journal(journal_path, batch.header(options, identity, backend.salt))
    except batch.BatchError as exc:
        return _fail(str(exc))
    except batch.BackendError as exc:
        return _fail(f"{exc.kind}: {exc.detail}")
    except _startup_errors() as exc:
        return _fail(explained(exc))

    if writes:
        batch.remove_partials([out] if out else [t for t in args.inputs if os.path.isdir(t)])
    summary = batch.run(
        options, tasks, journal, args.workers, progress=not args.no_progress, backend=backend
    )
    backend.close()
    journal.close(summary)
    print(summary.text(args.command), file=sys.stderr)
    if summary.failed:
        return 1
    return 130 if summary.interrupted else 0


def _ray(
    args: argparse.Namespace, options: Any, backend: Any, identity: dict[str, Any], out: Any
) -> int:
    """``--engine ray``: the same run on a Ray cluster, over paths or fsspec URLs."""
    from app import batch
    from app.settings import explained

    try:
        from app.batch import rayengine, storage
    except ImportError as exc:
        return _fail(f"--engine ray needs Ray and fsspec: pip install 'aigc-label[ray]' ({exc})")
    header = batch.header(options, identity | {"engine": "ray"}, backend.salt)
    backend.close()  # the workers hold their own connections; the driver only journals
    remote = None
    try:
        report = args.report
        if report and storage.is_url(report):
            from app.settings import Settings

            remote = storage.RemoteReport(report, str(Settings().data_dir / "reports"))
            report = remote.local
        journal = batch.Journal(report, header)
        if out and not storage.is_url(out) and args.command != "verify":
            batch.remove_partials([storage.local_path(out)])
        uploaded = [0]

        def on_line(_line: dict[str, Any]) -> None:
            uploaded[0] += 1
            if remote is not None and uploaded[0] % 500 == 0:
                remote.upload()  # a driver that dies loses at most 500 lines of the report

        try:
            summary = rayengine.run(
                options,
                args.inputs,
                out,
                args.include,
                args.exclude,
                [args.report] if args.report else [],
                journal,
                workers=args.workers,
                batch_size=args.batch_size,
                worker_memory=args.worker_memory,
                address=args.address,
                progress=not args.no_progress,
                on_line=on_line,
            )
        except batch.BatchError:
            journal.close()
            raise
        journal.close(summary)
        if remote is not None:
            remote.close()
    except batch.BatchError as exc:
        return _fail(str(exc))
    except _startup_errors() as exc:
        return _fail(explained(exc))
    print(summary.text(args.command), file=sys.stderr)
    if summary.failed:
        return 1
    return 130 if summary.interrupted else 0


def _prepare(options: Any) -> tuple[Any, dict[str, Any]]:
    """The backend for this process (validates identity and options); the identity shown."""
    from app import batch

    if options.server:
        backend = batch.ServerBackend(options)
        try:
            health = backend.client.get("/healthz", timeout=10)
        except Exception as exc:
            raise batch.BackendError("server-unreachable", f"{options.server}: {exc}") from None
        if health.status_code != 200:
            raise batch.BackendError(
                "server-unreachable", f"{options.server}/healthz answered {health.status_code}"
            )
        return backend, {"server": options.server}
    # the cheap checks first, so a wrong key name or wording fails before the heavy start
    import contextlib

    from app.auth import load_keys
    from app.settings import from_env
    from labelers.visible.wording import resolve_wording

    settings = from_env()  # the service's settings, read without pydantic (app/settings.py)
    # said on every run: two data directories mean two identities (keys, ledger)
    print(f"aigc-label: data directory {settings.data_dir} (AIGC_DATA_DIR)", file=sys.stderr)
    if options.command != "verify":
        with contextlib.redirect_stdout(sys.stderr):  # a new development key is printed
            keys = load_keys(settings.api_keys_file, settings.api_keys, settings.data_dir)
        batch.pick_identity(keys, options)
    resolve_wording(options.wording)
    backend = batch.LibraryBackend(options)
    who = backend.identity
    identity: dict[str, Any] = {"library": True}
    if who is not None:
        identity |= {
            "name": who.name,
            "producer": who.producer,
            "platform": who.platform,
            "development": who.development,
        }
        if who.development:
            code = who.platform if options.command == "propagate" else who.producer
            print(
                f"aigc-label: development mode (no API keys configured): acting as {code}, "
                "a test code",
                file=sys.stderr,
            )
    return backend, identity


def _check_position(parser: argparse.ArgumentParser, spec: str) -> None:
    """A position no file can take fails once, up front; one that fits some kinds says so."""
    from labelers.errors import InvalidOption
    from labelers.pipeline import POSITIONS, parse_positions

    try:
        positions = parse_positions(spec)
    except InvalidOption as exc:
        parser.error(f"--position: {exc.detail}")
    names = {"image": "images", "video": "videos", "document": "documents", "audio": "audio files"}
    others = [k for k in POSITIONS if k not in positions]
    if others:
        given = ", ".join(f"{names[k]} {v}" for k, v in positions.items())
        kept = ", ".join(f"{names[k]} keep {POSITIONS[k][0]}" for k in others)
        print(f"aigc-label: --position {spec}: {given}; {kept}", file=sys.stderr)


def _startup_errors() -> tuple[type[BaseException], ...]:
    from app.auth import AuthConfigError
    from app.settings import SettingsError
    from labelers.errors import AigcError

    return (AigcError, AuthConfigError, SettingsError, OSError)


def _fail(message: str) -> int:
    print(f"aigc-label: error: {message}", file=sys.stderr)
    return 2


def _stdin(options: Any, backend: Any, report: str | None) -> int:
    """One file from stdin; the labelled file (or the verify report) to stdout."""
    import json

    from app import batch
    from app.settings import explained
    from labelers.errors import AigcError
    from labelers.record import new_produce_id

    data = sys.stdin.buffer.read()
    line: dict[str, Any] = {"path": "-", "output": "-", "produce_id": None, "error": None}
    out: bytes | None = None
    try:
        if not data:
            raise batch.BackendError("corrupt-input", "stdin was empty")
        if options.command == "label":
            labelled = backend.label(data, new_produce_id(), "stdin")
            note = labelled.commit()
            out = labelled.data
            line |= labelled.report_fields(note)
        elif options.command == "verify":
            result = backend.verify(data, "stdin")
            out = (json.dumps(result, ensure_ascii=False, indent=2) + "\n").encode()
            record = result.get("record") or {}
            line |= {
                "output": None,
                "media_type": result.get("media_type"),
                "produce_id": record.get("ProduceID") or None,
                "outcome": "verified",
                "classification": result.get("classification"),
            }
        else:
            done = backend.propagate(data, new_produce_id(), "stdin")
            if done.data is not None:
                done.commit()
            out = data if done.data is None else done.data
            line |= {
                "media_type": done.media_type,
                "produce_id": done.produce_id,
                "propagate_id": done.propagate_id,
                "outcome": "propagated",
                "classification": done.classification,
            }
    except (AigcError, batch.BackendError) as exc:
        detail = explained(exc)
        line |= {"outcome": "failed", "error": detail, "error_kind": exc.kind}
        print(f"aigc-label: {exc.kind}: {detail}", file=sys.stderr)
    if report:
        journal = batch.Journal(report, batch.header(options, {}, backend.salt))
        journal.record(line)
        journal.close()
    if out is None:
        return 1
    sys.stdout.buffer.write(out)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
