"""C2PA manifests embedded in unstructured text (C2PA 2.x): the C2PATextManifestWrapper.

The C2PA specification carries a manifest store in plain text as U+FEFF
followed by a run of variation selectors, one byte per selector (byte ``b`` is
U+FE00 + b below 16, U+E0100 + b - 16 above: the same byte alphabet as our own
text mark), spelling ``"C2PATXT\\0"``, a version byte (1), the store's length
(32-bit big-endian) and the JUMBF manifest store. The store's ``c2pa.hash.data``
assertion binds the text: its ``exclusions`` are byte ranges of the UTF-8 text
as stored (the wrapper); the rest, normalised to NFC, is what is hashed.

This module owns that wrapper: :func:`wrap` writes one around a store,
:func:`find_wrappers` locates them, :func:`read` verifies one, whoever wrote
it: the store through :func:`labelers.provenance.read_manifest` (signature,
trust, assertions), the text binding here.

Writing a signed text manifest is not offered: the bundled c2pa-python (0.38,
c2pa-rs 0.91) has no text format (``Builder.get_supported_mime_types()`` lists
no ``text/*``) and no way to sign a data hash with caller-given exclusions; its
bare-store output (``application/c2pa``) binds a placeholder, not the text.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import c2pa

from labelers.errors import CorruptInput
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.provenance import ProvenanceReport, read_manifest
from labelers.watermark.text import VS_CHARS

MAGIC = b"C2PATXT\x00"
VERSION = 1
_HEADER = len(MAGIC) + 1 + 4
_BYTE = {c: b for b, c in enumerate(VS_CHARS)}
_WRAPPER_RE = re.compile("\ufeff([\ufe00-\ufe0f\U000e0100-\U000e01ef]+)")
# the magic as selectors: a literal search finds a wrapper without decoding runs
_MAGIC_CHARS = "\ufeff" + "".join(VS_CHARS[b] for b in MAGIC)
_HASHES = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}

CORRUPTED = "manifest.text.corruptedWrapper"
MULTIPLE = "manifest.text.multipleWrappers"


@dataclass(frozen=True)
class Wrapper:
    start: int  # character offsets of the wrapper (U+FEFF included) in the text
    end: int
    version: int
    manifest: bytes  # the JUMBF manifest store


def wrap(manifest: bytes) -> str:
    """The wrapper carrying ``manifest`` (to append to a text, or to test readers)."""
    data = MAGIC + bytes([VERSION]) + len(manifest).to_bytes(4, "big") + manifest
    return "\ufeff" + "".join(VS_CHARS[b] for b in data)


def find_wrappers(text: str, limits: Limits = DEFAULT_LIMITS) -> tuple[list[Wrapper], list[str]]:
    """The well-formed wrappers in ``text``, and what is wrong with malformed ones."""
    wrappers: list[Wrapper] = []
    problems: list[str] = []
    at = text.find(_MAGIC_CHARS)
    while at >= 0:
        m = _WRAPPER_RE.match(text, at)
        assert m is not None  # the magic itself is a run of selectors after U+FEFF
        run = m.group(1)
        end = m.end()
        if len(run) > limits.max_bytes + _HEADER:
            problems.append(f"{CORRUPTED}: the wrapper is larger than the upload limit")
        elif len(run) < _HEADER:
            problems.append(f"{CORRUPTED}: the wrapper stops inside its header")
        else:
            data = bytes(_BYTE[c] for c in run)
            length = int.from_bytes(data[len(MAGIC) + 1 : _HEADER], "big")
            if data[len(MAGIC)] != VERSION:
                problems.append(f"{CORRUPTED}: unknown wrapper version {data[len(MAGIC)]}")
            elif _HEADER + length > len(data):
                problems.append(
                    f"{CORRUPTED}: the header announces {length} manifest bytes, "
                    f"{len(data) - _HEADER} follow"
                )
            else:
                end = m.start(1) + _HEADER + length
                manifest = data[_HEADER : _HEADER + length]
                wrappers.append(Wrapper(at, end, data[len(MAGIC)], manifest))
        at = text.find(_MAGIC_CHARS, end)
    return wrappers, problems


@dataclass
class TextManifest:
    """What a text's C2PA wrapper holds, and whether the text still matches it."""

    provenance: ProvenanceReport | None  # None when no wrapper could be read
    #: "match" (the text is what was signed), "mismatch" (it changed), "absent"
    #: (the manifest has no c2pa.hash.data), "unverifiable" (unknown algorithm)
    binding: str
    problems: list[str] = field(default_factory=list)  # C2PA status codes with details
    wrapper: Wrapper | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "binding": self.binding,
            "problems": self.problems,
            "provenance": self.provenance.to_dict() if self.provenance else None,
        }


def read(
    text: str, trust_anchors_pem: str | None = None, limits: Limits = DEFAULT_LIMITS
) -> TextManifest | None:
    """Verify the C2PA manifest wrapped into ``text``; None when it carries none."""
    if "\ufeff" not in text:
        return None
    wrappers, problems = find_wrappers(text, limits)
    if not wrappers:
        return TextManifest(None, "absent", problems) if problems else None
    if len(wrappers) > 1:
        problems.append(f"{MULTIPLE}: {len(wrappers)} wrappers; the first is read")
    wrapper = wrappers[0]
    try:
        provenance = read_manifest(
            wrapper.manifest, "application/c2pa", trust_anchors_pem, limits=limits
        )
    except CorruptInput as exc:
        return TextManifest(None, "absent", [*problems, f"{CORRUPTED}: {exc.detail}"], wrapper)
    if provenance is None:
        return TextManifest(None, "absent", [*problems, f"{CORRUPTED}: no manifest store"], wrapper)
    return TextManifest(provenance, _binding(text, wrapper), problems, wrapper)


def _binding(text: str, wrapper: Wrapper) -> str:
    hash_data = _hash_assertion(wrapper.manifest)
    if not hash_data:
        return "absent"
    digest = _HASHES.get(str(hash_data.get("alg", "sha256")).lower())
    try:
        expected = base64.b64decode(str(hash_data.get("hash", "")), validate=True)
    except ValueError:
        return "mismatch"
    if digest is None:
        return "unverifiable"
    exclusions = [
        (int(e.get("start", 0)), int(e.get("length", 0)))
        for e in hash_data.get("exclusions") or []
        if isinstance(e, dict)
    ]
    return "match" if covered_digest(text, exclusions, digest) == expected else "mismatch"


def covered_digest(
    text: str, exclusions: list[tuple[int, int]], digest: Any = hashlib.sha256
) -> bytes:
    """The hash a text's ``c2pa.hash.data`` binds: ``exclusions`` (byte start, length
    in the UTF-8 text as stored) removed, the rest normalised to NFC, as UTF-8."""
    data = text.encode("utf-8")
    kept, pos = [], 0
    for start, length in sorted(exclusions):
        kept.append(data[pos : max(pos, start)])
        pos = max(pos, start + length)
    kept.append(data[pos:])
    covered = b"".join(kept).decode("utf-8", errors="replace")
    return digest(unicodedata.normalize("NFC", covered).encode("utf-8")).digest()


def _hash_assertion(store: bytes) -> dict[str, Any] | None:
    """The active manifest's ``c2pa.hash.data`` assertion (c2pa's summary JSON omits it)."""
    offline = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
    try:
        context = c2pa.Context(c2pa.Settings.from_dict(offline))
        reader = c2pa.Reader.try_create("application/c2pa", io.BytesIO(store), None, context)
        if reader is None:
            return None
        with reader:
            detailed = json.loads(reader.detailed_json())
    except (c2pa.C2paError, ValueError):
        return None
    active = (detailed.get("manifests") or {}).get(detailed.get("active_manifest") or "") or {}
    assertions = active.get("assertion_store") or {}
    found = assertions.get("c2pa.hash.data") if isinstance(assertions, dict) else None
    return found if isinstance(found, dict) else None
