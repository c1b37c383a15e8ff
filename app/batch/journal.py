"""The JSONL report, appended and flushed per file: what a rerun resumes from."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import IO, Any

from app.batch.ids import canonical_path
from app.batch.options import DONE, LINE_KEYS, BatchError, Summary, Task


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
