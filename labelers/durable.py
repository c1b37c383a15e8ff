"""Files that are never seen half-written: atomic writes, and files created once under a lock.

Every file the service writes for keeps (labelled outputs, keys, development
credentials) goes through here: the bytes land in a hidden temporary file
beside the destination, are fsynced, and are renamed over it, and the
directory is fsynced so the rename survives a power cut. A crash leaves at
most the hidden temporary file. Files that several processes may want to
create at the same moment (a key on first start, with workers starting
together) are created under an exclusive ``flock``: the first creates, the
others read what it wrote.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


def stage(dest: str | Path, data: bytes, mode: int = 0o644, suffix: str = ".tmp") -> str:
    """Write ``data`` to a hidden temporary file beside ``dest``, fsynced; its path.

    The mode is set before any byte lands (keys are never readable by others,
    even for a moment). The caller renames it into place with :func:`commit`,
    or deletes it.
    """
    directory = os.path.dirname(os.path.abspath(dest))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(dest)}.", suffix=suffix)
    try:
        os.fchmod(fd, mode & 0o777)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp


def commit(tmp: str, dest: str | Path) -> None:
    """Rename a staged file over ``dest`` and make the rename durable."""
    os.replace(tmp, dest)
    fsync_directory(os.path.dirname(os.path.abspath(dest)))


def write_atomically(dest: str | Path, data: bytes, mode: int = 0o644) -> None:
    """``dest`` holds ``data`` afterwards, or (after a crash) what it held before."""
    tmp = stage(dest, data, mode)
    try:
        commit(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def fsync_directory(directory: str | Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be fsynced
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def exclusive_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block.

    flock locks belong to the open file description, so this also serialises
    threads of one process (each opens its own descriptor). OSError when the
    lock file cannot be opened (a read-only directory).
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def create_once(
    path: str | Path, make: Callable[[], bytes], mode: int = 0o600
) -> tuple[bytes, bool]:
    """The bytes of ``path``, made by ``make()`` and written atomically if it is missing.

    Returns (bytes, created). Concurrent callers serialise on a lock file
    beside ``path``: exactly one of them calls ``make``, the others read its file.
    """
    path = Path(path)
    if path.exists():  # files only ever appear whole: no lock needed to read one
        return path.read_bytes(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(path.with_name(f".{path.name}.lock")):
        if path.exists():
            return path.read_bytes(), False
        data = make()
        write_atomically(path, data, mode)
        return data, True
