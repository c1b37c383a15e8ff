"""Finding the input files: directories walked, globs applied, hidden entries
and leftover partial outputs skipped."""

from __future__ import annotations

import contextlib
import fnmatch
import os
from collections.abc import Callable, Iterable, Iterator

from app.batch.options import PARTIAL_SUFFIX, BatchError, Task


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
    app/batch/storage.py), ``full`` the place of a name in a directory as
    ``out_abs`` and ``skip`` spell it.
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
