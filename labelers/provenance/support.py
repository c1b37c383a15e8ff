"""What this c2pa build reads and writes (probed once, not assumed), a cheap
look for a manifest store's marker in the bytes, and c2pa's error text
reduced to its message.
"""

from __future__ import annotations

import functools
import struct
import zlib

import c2pa

from labelers.formats import png as png_format


def c2pa_message(exc: c2pa.C2paError) -> str:
    text = str(exc).strip() or type(exc).__name__.lstrip("_")
    kind, sep, rest = text.partition(": ")
    # drop c2pa's "Other: " style kind prefix; keep the sentence
    return rest if sep and kind.isidentifier() and rest else text


@functools.cache
def supported_media_types() -> frozenset[str]:
    """MIME types c2pa can embed a manifest in (its list also holds bare extensions)."""
    return frozenset(t for t in c2pa.Builder.get_supported_mime_types() if "/" in t)


@functools.cache
def readable_media_types() -> frozenset[str]:
    return frozenset(t for t in c2pa.Reader.get_supported_mime_types() if "/" in t)


# a 1x1 grey PNG for the credential probe
PROBE_PNG = (
    png_format.SIGNATURE
    + png_format.make_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    + png_format.make_chunk(b"IDAT", zlib.compress(b"\x00\x80"))
    + png_format.make_chunk(b"IEND", b"")
)


def has_manifest_marker(data: bytes) -> bool:
    # JUMBF box labels every C2PA manifest carries; unlikely in anything else
    return b"c2pa.signature" in data or b"c2pa.claim" in data
