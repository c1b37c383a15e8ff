"""Deterministic ProduceIDs and PropagateIDs (ULIDs whose random field is an HMAC of the input)."""

from __future__ import annotations

import hashlib
import hmac
import os

_ULID_RANDOM_CHARS = 16  # the last 16 of 26 ULID characters are the 80-bit field


def derive_id(salt: bytes, dest: str, content_sha256: str, mtime_ns: int) -> str:
    """The batch ProduceID/PropagateID for one input: see the module docstring."""
    from labelers.record import encode_ulid

    place = canonical_path(dest).encode("utf-8", "surrogateescape")
    msg = place + b"\0" + content_sha256.encode()
    mac = hmac.new(salt, msg, hashlib.sha256).digest()
    millis = (mtime_ns // 1_000_000) & ((1 << 48) - 1)
    return encode_ulid(millis << 80 | int.from_bytes(mac[:10], "big"))


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


def identity_salt(code: str) -> bytes:
    return hashlib.sha256(b"aigc-label batch ids v1\0" + code.encode()).digest()
