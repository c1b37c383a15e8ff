"""The GB 45438-2025 Annex E implicit-label record, in one type.

Everything that reads or writes a record goes through :class:`Record`: parsing
every form met in the wild (wrapped ``{"AIGC":{...}}`` or bare, HTML/XML
escaped, keys in any order or case, stray whitespace), dumping the compact form
each carrier wants, validating the charset / Label / provider-code rules, and
minting ProduceIDs.

Writing is strict (:meth:`Record.validate` raises); reading is lenient: a record
that breaks a rule still parses, and :meth:`Record.problems` plus
``parse_notes`` tell the verifier what was wrong so it can report findings.
"""

from __future__ import annotations

import html
import json
import random
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any

from labelers.errors import InvalidRecord

#: Annex E keys, in the order the standard lists them (and we serialise them).
KEYS = (
    "Label",
    "ContentProducer",
    "ProduceID",
    "ReservedCode1",
    "ContentPropagator",
    "PropagateID",
    "ReservedCode2",
)
_ATTRS = (
    "label",
    "content_producer",
    "produce_id",
    "reserved_code1",
    "content_propagator",
    "propagate_id",
    "reserved_code2",
)
KEY_TO_ATTR = dict(zip(KEYS, _ATTRS, strict=True))

#: Label values: confirmed, possibly, suspected AI-generated (Measures Art. 6).
LABEL_MEANINGS = {"1": "AI-generated", "2": "possibly AI-generated", "3": "suspected AI-generated"}

# GB18030 code points 0x21, 0x23-0x5B, 0x5D-0x7E, plus '"' (serialised as \").
# In decoded form that is printable ASCII without space and without backslash.
_VALUE_RE = re.compile(r"[\x21-\x5b\x5d-\x7e]*")
_PROVIDER_CODE_RE = re.compile(r"[0-9A-Z]{27}")


@dataclass(frozen=True)
class Record:
    """One Annex E record. All fields are strings; unused ones are ``""``."""

    label: str
    content_producer: str
    produce_id: str
    reserved_code1: str = ""
    content_propagator: str = ""
    propagate_id: str = ""
    reserved_code2: str = ""
    #: what a lenient parse had to forgive (non-string values, odd keys, ...)
    parse_notes: tuple[str, ...] = field(default=(), compare=False, repr=False)

    # ----------------------------------------------------------------- making
    @classmethod
    def first_write(
        cls, producer: str, produce_id: str, label: str = "1", reserved_code1: str = ""
    ) -> Record:
        """A producer's record: propagator fields mirror the producer's (Annex E)."""
        return cls(
            label=label,
            content_producer=producer,
            produce_id=produce_id,
            reserved_code1=reserved_code1,
            content_propagator=producer,
            propagate_id=produce_id,
        )

    def with_fields(self, **changes: str) -> Record:
        return replace(self, parse_notes=(), **changes)

    # ---------------------------------------------------------------- dumping
    def as_dict(self) -> dict[str, str]:
        """The seven fields, Annex E key names, standard order."""
        return {key: getattr(self, attr) for key, attr in KEY_TO_ATTR.items()}

    def dumps(self, wrapped: bool = True) -> str:
        """Compact JSON: ``{"AIGC":{...}}`` or, for carriers named AIGC, the bare object."""
        body: Any = self.as_dict()
        if wrapped:
            body = {"AIGC": body}
        return json.dumps(body, ensure_ascii=True, separators=(",", ":"))

    # -------------------------------------------------------------- validating
    def problems(self) -> list[str]:
        """Every rule this record breaks, as sentences; empty when conformant."""
        out: list[str] = []
        if self.label not in LABEL_MEANINGS:
            out.append(f'Label must be "1", "2" or "3", not {self.label!r}')
        # A producer's record names producer and ProduceID; a record a platform
        # creates for content of unknown origin (Label "2"/"3") may name only
        # the propagator. Either way a named party comes with its ID.
        for party, ident in (
            ("ContentProducer", "ProduceID"),
            ("ContentPropagator", "PropagateID"),
        ):
            has_party, has_id = (
                bool(getattr(self, KEY_TO_ATTR[party])),
                bool(getattr(self, KEY_TO_ATTR[ident])),
            )
            if has_party != has_id:
                missing = ident if has_party else party
                out.append(
                    f"{missing} must not be empty when {party if has_party else ident} is set"
                )
        if not (self.content_producer or self.content_propagator):
            out.append("ContentProducer must not be empty")
        for key, attr in KEY_TO_ATTR.items():
            value = getattr(self, attr)
            bad = charset_violation(value)
            if bad:
                out.append(f"{key} {bad}")
        return out

    def validate(self) -> Record:
        """Raise :class:`InvalidRecord` naming every problem; return self if fine."""
        probs = self.problems()
        if probs:
            raise InvalidRecord("invalid AIGC record: " + "; ".join(probs))
        return self

    # ---------------------------------------------------------------- parsing
    @classmethod
    def parse(cls, text: str | bytes) -> Record:
        """Parse any form of the record met in the wild.

        Raises :class:`InvalidRecord` when no record can be recovered at all;
        a record that merely breaks rules is returned (see :meth:`problems`).
        """
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        obj = _load_json_leniently(text)
        return cls.from_mapping(obj)

    @classmethod
    def from_mapping(cls, obj: Any) -> Record:
        notes: list[str] = []
        if isinstance(obj, dict):
            wrapper = next((k for k in obj if isinstance(k, str) and k.upper() == "AIGC"), None)
            if wrapper is not None:
                inner = obj[wrapper]
                if isinstance(inner, str):  # double-encoded: {"AIGC":"{\"Label\":...}"}
                    notes.append("the AIGC value is a JSON string, not an object")
                    inner = _load_json_leniently(inner)
                obj = inner
        if not isinstance(obj, dict):
            raise InvalidRecord("AIGC record is not a JSON object")
        values: dict[str, str] = {}
        lower = {k.lower(): k for k in KEYS}
        for key, value in obj.items():
            canonical = lower.get(str(key).lower())
            if canonical is None:
                notes.append(f"unknown key {key!r}")
                continue
            if canonical != key:
                notes.append(f"key {key!r} should be spelled {canonical!r}")
            if not isinstance(value, str):
                notes.append(f"{canonical} must be a string, found {json.dumps(value)}")
                value = "" if value is None else str(value)
            values[KEY_TO_ATTR[canonical]] = value
        if not any(k in values for k in ("label", "content_producer", "produce_id")):
            raise InvalidRecord("JSON object has none of the AIGC record keys")
        for key in KEYS:
            if KEY_TO_ATTR[key] not in values:
                notes.append(f"key {key} is missing")
        return cls(**{a: values.get(a, "") for a in _ATTRS}, parse_notes=tuple(notes))


def charset_violation(value: str) -> str | None:
    """Why ``value`` breaks the Annex E charset rule, or None."""
    if _VALUE_RE.fullmatch(value):
        return None
    bad = sorted({c for c in value if not _VALUE_RE.fullmatch(c)})
    shown = ", ".join(f"U+{ord(c):04X}" + (f" {c!r}" if c.isprintable() else "") for c in bad[:5])
    return (
        f"must use printable ASCII without spaces or backslashes (GB 45438 Annex E); found {shown}"
    )


def provider_code_problems(code: str) -> list[str]:
    """Structure check of a TC260-PG-20252A provider code (27 chars).

    ``00`` + 20-char subject code + 5-char service extension whose first
    character is ``1`` (generation) or ``2`` (distribution).
    """
    if not _PROVIDER_CODE_RE.fullmatch(code):
        return [
            f"provider code {code!r} must be 27 digits or upper-case letters "
            f"(TC260-PG-20252A), got {len(code)} characters"
        ]
    out = []
    if not code.startswith("00"):
        out.append(f"provider code {code!r} must start with '00'")
    if code[22] not in "12":
        out.append(
            f"provider code {code!r}: service extension must start with 1 (generation) "
            "or 2 (distribution)"
        )
    return out


def provider_role(code: str) -> str | None:
    """'generation' / 'distribution' for a well-formed provider code, else None."""
    if provider_code_problems(code):
        return None
    return {"1": "generation", "2": "distribution"}[code[22]]


# ----------------------------------------------------------------- ProduceIDs
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_produce_id() -> str:
    """A ULID: 48-bit millisecond time + 80 random bits, 26 Crockford base32 chars.

    Sorts by creation time, is unique without coordination between worker
    processes, and fits the Annex E charset. The random bits come from the
    ``random`` module (seeded from the OS, reseeded in every forked child):
    uniqueness is what a ProduceID needs, and os.urandom's syscall releases
    the GIL, which under load cost a request as much as the rest of the
    labelling.
    """
    value = (time.time_ns() // 1_000_000) << 80 | random.getrandbits(80)
    return encode_ulid(value)


# every 10-bit group as its two Crockford characters: a ULID is 13 lookups
_CROCKFORD_PAIRS = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)


def encode_ulid(value: int) -> str:
    # the 128 bits behind two zero bits (130 bits = 26 characters); base64's
    # b32encode is a Python loop in 3.11, several times slower than this
    value &= (1 << 128) - 1
    return "".join(_CROCKFORD_PAIRS[(value >> shift) & 0x3FF] for shift in range(120, -1, -10))


#: Crockford's characters to the digits int(..., 32) reads; lower case is made unreadable
#: (ULIDs here are upper case), anything else stays and fails the digit check
_TO_BASE32_DIGITS = str.maketrans(
    {c: "0123456789abcdefghijklmnopqrstuv"[i] for i, c in enumerate(_CROCKFORD)}
    | {c: "!" for c in "abcdefghijklmnopqrstuvwxyz"}
)
_BASE32_ULID = re.compile("[0-7][0-9a-v]{25}")


def decode_ulid(text: str) -> int | None:
    """The 128-bit value of a ULID string, or None if it is not one."""
    digits = text.translate(_TO_BASE32_DIGITS) if len(text) == 26 else ""
    return int(digits, 32) if _BASE32_ULID.fullmatch(digits) else None


# -------------------------------------------------------------- leniency
def _load_json_leniently(text: str) -> Any:
    candidate = text.strip().strip("\x00")
    for _ in range(3):  # raw, then once or twice HTML/XML-unescaped
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            pass
        start, end = candidate.find("{"), candidate.rfind("}")
        if 0 <= start < end:
            try:
                return json.loads(candidate[start : end + 1])
            except json.JSONDecodeError:
                pass
        unescaped = html.unescape(candidate)
        if unescaped == candidate:
            break
        candidate = unescaped
    raise InvalidRecord(f"not a JSON AIGC record: {text[:80]!r}")
