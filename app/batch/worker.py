"""One file at a time: the resume rules, then the backend's label / verify /
propagate, as one report line."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import time
import traceback
from collections.abc import Callable
from typing import Any

from app.batch.backend import Backend, BackendError, _media_type
from app.batch.ids import derive_id, same_family
from app.batch.library import LibraryBackend
from app.batch.options import BatchOptions, Task
from app.batch.server import ServerBackend
from app.batch.storage import FileInfo, Files, LocalFiles
from detectors.carried import carried_ids


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
        self, options: BatchOptions, backend: Backend | None = None, files: Files | None = None
    ) -> None:
        self.options = options
        if backend is None:
            backend = ServerBackend(options) if options.server else LibraryBackend(options)
        self.backend: Backend = backend
        # where inputs are read and outputs published: this machine's disk, or (Ray) URLs too
        self.files = files if files is not None else LocalFiles()

    def handle(self, task: Task) -> dict[str, Any]:
        from app.settings import explained
        from labelers.errors import AigcError

        started = time.monotonic()
        try:
            line = getattr(self, "_" + self.options.command)(task)
        except AigcError as exc:
            line = _failed(task, exc.kind, explained(exc))
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
                f"the file is {st.size} bytes, over the limit of {limit} bytes",
                limit="max_bytes",
                value=limit,
                amount=st.size,
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
        return {**base, **labelled.report_fields(note)}

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


def _basename(path: str) -> str:
    """The file name of a path or URL (sent to the service with the bytes)."""
    return path.rstrip("/").rsplit("/", 1)[-1] if "://" in path else os.path.basename(path)


def _skipped(base: dict[str, Any], media_type: str | None, **extra: Any) -> dict[str, Any]:
    return {"produce_id": None, **base, "media_type": media_type, "outcome": "skipped", **extra}
