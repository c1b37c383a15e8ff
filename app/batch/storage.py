"""Where a worker reads inputs and publishes outputs: local files, and fsspec URLs (Ray engine).

What this module owns: the three steps of publishing an output (``stage``
the finished bytes where nothing can see them, let the worker commit the
ledger row, ``publish`` them at the destination in one step), on a local
disk (``LocalFiles``: a hidden fsynced temporary file, then a rename) and
behind fsspec URLs such as ``s3://bucket/prefix`` (``Files``); telling a URL
from a local path, listing a tree under
a URL lazily (one directory listing at a time, never the whole bucket), and
the object-store side of "never a partial output". An object store has no
rename, but a PUT is atomic: readers see the previous object or the whole new
one. So an output is staged in memory (the finished bytes), the ledger row is
committed, and then the bytes go to the final key in ONE PUT (s3fs uses a
single ``PutObject`` up to 100 MB; a multipart upload above that is
invisible until completed, so still whole or nothing). Nothing is ever
written under a temporary key, so a killed worker leaves nothing behind.

Local paths and ``file://`` URLs keep the local engine's write-fsync-rename
(``LocalFiles``), so on a disk both engines give the same guarantees.

Credentials and endpoints come from the environment the usual way
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL`` for
S3-compatible stores such as Alibaba OSS or Tencent COS, or fsspec's own
``FSSPEC_S3_*`` variables); the Ray engine forwards them to its workers.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.batch.discovery import _walk
from app.batch.ids import canonical_path
from app.batch.options import PARTIAL_SUFFIX, BatchError, Task
from labelers.durable import commit, stage

#: environment variables a worker on another node needs to reach the same storage
STORAGE_ENV_PREFIXES = ("AWS_", "FSSPEC_")


@dataclass(frozen=True)
class FileInfo:
    size: int
    mtime_ns: int
    mode: int  # permission bits an output inherits (local files)


class LocalFiles:
    """This machine's filesystem: stage = hidden fsynced temporary file, publish = rename.

    A kill leaves at most a hidden ``*.aigc-partial`` file, which the next run
    deletes before it starts (``discovery.remove_partials``).
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
        return stage(dest, data, mode, suffix=PARTIAL_SUFFIX)

    def publish(self, staged: Any, dest: str) -> None:
        commit(staged, dest)

    def discard(self, staged: Any) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staged)


def is_url(path: str) -> bool:
    """A remote URL (anything with ``scheme://`` except ``file://``, which is local)."""
    return "://" in path and not path.startswith("file://")


def local_path(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


def join(base: str, rel: str) -> str:
    """``rel`` (a relative path from a walk) under ``base``, a URL or a local directory."""
    if is_url(base):
        return base.rstrip("/") + "/" + rel.replace(os.sep, "/")
    return os.path.join(local_path(base), rel)


def _filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem for ``url`` and the path it uses (protocol stripped)."""
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise BatchError(f"{url}: no storage for this URL ({exc})") from None
    return fs, path


def _mtime_ns(info: dict[str, Any]) -> int:
    """Modification time of an fsspec entry (S3: LastModified), ns; 0 when the store has none."""
    for key in ("LastModified", "mtime", "last_modified", "updated", "created"):
        value = info.get(key)
        if isinstance(value, datetime):
            return int(value.timestamp() * 1_000_000_000)
        if isinstance(value, int | float):
            return int(value * 1_000_000_000)
    return 0


class Files:
    """What a worker reads and publishes through: local paths as ``LocalFiles``, URLs by fsspec.

    One instance per worker: filesystems are made once per protocol and kept.
    """

    def __init__(self) -> None:
        self._local = LocalFiles()
        self._fs: dict[str, Any] = {}

    def _resolve(self, url: str) -> tuple[Any, str]:
        protocol = url.split("://", 1)[0]
        fs = self._fs.get(protocol)
        if fs is None:
            fs, path = _filesystem(url)
            self._fs[protocol] = fs
            return fs, path
        return fs, fs._strip_protocol(url)

    def info(self, path: str) -> FileInfo:
        if not is_url(path):
            return self._local.info(local_path(path))
        fs, p = self._resolve(path)
        try:
            info = fs.info(p)
        except FileNotFoundError:
            raise FileNotFoundError(2, "no such object", path) from None
        return FileInfo(int(info.get("size") or 0), _mtime_ns(info), 0o644)

    def read(self, path: str) -> bytes:
        if not is_url(path):
            return self._local.read(local_path(path))
        fs, p = self._resolve(path)
        return fs.cat_file(p)

    def exists(self, path: str) -> bool:
        if not is_url(path):
            return self._local.exists(local_path(path))
        fs, p = self._resolve(path)
        fs.invalidate_cache(p)  # another worker may have published it since a listing
        return fs.exists(p)

    def stage(self, dest: str, data: bytes, mode: int) -> Any:
        if not is_url(dest):
            return self._local.stage(local_path(dest), data, mode)
        return data  # an object store's staging area is memory: nothing at any key yet

    def publish(self, staged: Any, dest: str) -> None:
        if not is_url(dest):
            self._local.publish(staged, local_path(dest))
            return
        fs, p = self._resolve(dest)
        fs.pipe_file(p, staged)  # one PUT of the finished bytes

    def discard(self, staged: Any) -> None:
        if isinstance(staged, str):
            self._local.discard(staged)


# -------------------------------------------------------------- listing
def iter_tasks(
    inputs: Iterable[str],
    out: str | None,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    skip: Iterable[str] = (),
) -> Iterator[Task]:
    """The files to process, as ``batch.discover`` finds them, lazily, over paths and URLs.

    The same rules as the local engine: a directory's contents go straight
    under ``out``, a file given by name to ``out/<its name>``, hidden entries
    and ``out`` itself are skipped. Two inputs mapping to one output are an
    error; that check keeps the outputs seen only when there is more than one
    input (one tree cannot map two files to one place).
    """
    inputs = list(inputs)
    out_key = canonical_path(out) if out else None
    skip_keys = {canonical_path(p) for p in skip}
    seen: set[str] | None = set() if len(inputs) > 1 else None
    for given in inputs:
        for task in _tasks_of(given, out, out_key, include or [], exclude or [], skip_keys):
            if task.dest and canonical_path(task.dest) == canonical_path(task.src):
                raise BatchError(
                    f"{task.src} would be overwritten by its own output; use --in-place to "
                    "relabel files where they are"
                )
            if seen is not None:
                key = canonical_path(task.dest or task.src)
                if key in seen:
                    what = "output" if task.dest else "input"
                    raise BatchError(f"two inputs map to the same {what} {key}")
                seen.add(key)
            yield task


def _tasks_of(
    given: str,
    out: str | None,
    out_key: str | None,
    include: list[str],
    exclude: list[str],
    skip: set[str],
) -> Iterator[Task]:
    if not is_url(given):
        path = local_path(given)
        if not os.path.exists(path):
            raise BatchError(f"{given}: no such file or directory")
        if os.path.isfile(path):
            yield Task(given, join(out, os.path.basename(path)) if out else None)
            return
        if out_key and canonical_path(path) == out_key:
            raise BatchError(f"--out {out} is the input directory itself; use --in-place")
        for rel in _walk(path, include, exclude, out_key, skip):
            yield Task(os.path.join(given, rel), join(out, rel) if out else None)
        return
    fs, root = _filesystem(given)
    protocol = given.split("://", 1)[0]

    def url(*parts: str) -> str:
        return f"{protocol}://" + "/".join(p.strip("/") for p in parts if p)

    if fs.isfile(root):
        name = root.rstrip("/").rsplit("/", 1)[-1]
        yield Task(given, join(out, name) if out else None)
        return
    if not fs.isdir(root):
        raise BatchError(f"{given}: no such object or prefix")
    if out_key and canonical_path(url(root)) == out_key.rstrip("/"):
        raise BatchError(f"--out {out} is the input prefix itself; use --in-place")
    walk = fs.walk
    for rel in _walk(root, include, exclude, out_key, skip, walk, lambda d, n: url(d, n)):
        yield Task(url(root, rel), join(out, rel) if out else None)


# -------------------------------------------------------------- reports
class RemoteReport:
    """A JSONL report at a URL: a local working copy that the run uploads whole.

    Object stores cannot append, so the journal is kept in a file on the
    driver's disk (under the data directory, named after the URL, so a driver
    that crashes and restarts finds it) and uploaded in one PUT at the end of
    the run and every ``every`` lines. A rerun starts from the uploaded report
    when there is no working copy.
    """

    def __init__(self, url: str, work_dir: str) -> None:
        import hashlib

        self.url = url
        digest = hashlib.sha256(url.encode()).hexdigest()[:24]
        os.makedirs(work_dir, exist_ok=True)
        self.local = os.path.join(work_dir, f"report-{digest}.jsonl")
        self.fs, self.path = _filesystem(url)
        if not os.path.exists(self.local):
            with contextlib.suppress(FileNotFoundError):
                data = self.fs.cat_file(self.path)
                with open(self.local, "wb") as f:
                    f.write(data)

    def upload(self) -> None:
        with open(self.local, "rb") as f:
            data = f.read()
        self.fs.pipe_file(self.path, data)

    def close(self) -> None:
        """The final upload; the working copy goes (the URL holds the report now)."""
        self.upload()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.local)


def read_text(url: str) -> str:
    """A whole object as text (tests and tools reading a report back)."""
    fs, path = _filesystem(url)
    with io.TextIOWrapper(fs.open(path, "rb"), encoding="utf-8") as f:
        return f.read()
