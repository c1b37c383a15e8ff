"""Each container is walked once per request.

Verifying a file reads its record, hashes its content and decodes its pixels;
labelling one digests it, writes a record into it and carries its metadata
into a re-encode. Each of those stages asks its format module for the
file's structure (JPEG segments, PNG chunks, MP4 boxes, ...), and each format
module has one walker for it. Inside a :func:`parse_scope` (``verify_file``
and ``label_file`` open one) a walker marked :func:`parsed_once` runs once per
(bytes object, limits) and later stages get the same parsed structure back.

The parsed structures are shared, so their consumers treat them as read-only:
writers build new lists and new bytes, never edit what a walker returned.

The memo lives in a context variable: each request (thread or task) has its
own, and it is dropped with the scope, so nothing outlives the request. It
holds the bytes it was asked about, so they cannot be freed and their
identity reused while their structure is held.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")


class ParseScope:
    """The parsed structures of one request, and a count of the walks made.

    A walker keeps only its latest structure: the stages of a request walk
    the same bytes one after the other, and a label's intermediate versions
    of a large file must not all stay alive until the request ends.
    """

    def __init__(self) -> None:
        self._latest: dict[tuple[Any, ...], tuple[Any, tuple[Any, ...], Any]] = {}
        #: walker name -> how many times it really walked a container
        self.walks: Counter[str] = Counter()

    def get(self, parse: Callable[..., T], data: Any, settings: tuple[Any, ...]) -> T:
        key = (parse, len(settings), *map(id, settings))
        held = self._latest.get(key)
        if held is not None and _same(held[0], data) and _same_settings(held[1], settings):
            return held[2]
        result = parse(data, *settings)
        self.walks[f"{parse.__module__}.{parse.__qualname__}"] += 1
        self._latest[key] = (data, settings, result)
        return result


def _same(held: Any, data: Any) -> bool:
    # bytes by identity (comparing a whole video per stage would be a walk);
    # text by value (an XMP packet is decoded anew by each of its readers)
    return held is data or (type(data) is str and type(held) is str and held == data)


def _same_settings(held: tuple[Any, ...], given: tuple[Any, ...]) -> bool:
    return all(a is b for a, b in zip(held, given, strict=True))


_current: ContextVar[ParseScope | None] = ContextVar("parse_scope", default=None)


@contextmanager
def parse_scope() -> Iterator[ParseScope]:
    """Share walks until the block ends; a scope inside another joins it."""
    outer = _current.get()
    if outer is not None:
        yield outer
        return
    scope = ParseScope()
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)


def parsed_once(parse: Callable[..., T]) -> Callable[..., T]:
    """Mark ``parse(data, *settings)`` as a walker memoised per scope.

    A walk is reused for the same ``data`` object (text: the same value) and
    the same setting objects (the :class:`~labelers.limits.Limits` a walk
    checks). Errors are not memoised:
    a walk that raises raises again when asked again. Outside a scope every
    call walks, and so does a walk of anything but ``bytes`` or ``str`` (a
    bytearray could change between two stages).
    """

    @functools.wraps(parse)
    def walk(data: Any, *settings: Any) -> T:
        scope = _current.get()
        if scope is None or type(data) not in (bytes, str):
            return parse(data, *settings)
        return scope.get(parse, data, settings)

    return walk


def shares_walks(stage: Callable[..., T]) -> Callable[..., T]:
    """Run ``stage`` inside a :func:`parse_scope` (joining one already open)."""

    @functools.wraps(stage)
    def run(*args: Any, **kwargs: Any) -> T:
        with parse_scope():
            return stage(*args, **kwargs)

    return run
