"""Who made the content: the report's ``origin``, from the evidence found.

Two sources of names, both data: the producer directory (``producers.toml``:
a GB record's ContentProducer / ContentPropagator code resolved through the
USCC inside it, or a bare name a producer writes instead of a code) and the
generator table (``generators.toml``, through the evidence detectors.traces
and the C2PA chain name). Any finder that knows a generator puts its display
name in the evidence's ``data["generator"]`` (and, if it knows better than the
default for its kind, ``data["origin_confidence"]``); this module only weighs
them.

Confidence: ``high`` when the maker said so in a structure only it writes (a
GB record's producer code; a C2PA manifest whose signer is the generator's
organisation and whose content still matches), ``medium`` for a named tool in
a claim or metadata convention anyone could copy, ``low`` for a loose name.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from detectors.report import RECORD, Report
from detectors.traces import generator, generator_named_in
from labelers.integrity import Keyring, Sm2PublicKey

_RANK = {"high": 3, "medium": 2, "low": 1}
# confidence of a named generator by evidence kind, when the finder says nothing
_DEFAULT_CONFIDENCE = {RECORD: "high", "c2pa": "medium", "generator-trace": "medium"}
_CODE_LENGTH = 27
_USCC = slice(4, 22)  # characters 5-22 of a TC260-PG-20252A provider code


@dataclass(frozen=True)
class Producer:
    company: str
    product: str | None
    generator: str  # display name
    sm2_key_x: str | None = None
    sm2_key_odd_y: bool = False


@dataclass(frozen=True)
class _Directory:
    by_uscc: dict[str, Producer]
    by_name: dict[str, Producer]  # casefolded bare name -> producer


@functools.cache
def directory() -> _Directory:
    raw: dict[str, Any] = tomllib.loads(
        resources.files("detectors").joinpath("producers.toml").read_text("utf-8")
    )
    by_uscc: dict[str, Producer] = {}
    by_name: dict[str, Producer] = {}
    for row in raw.get("producer", []):
        producer = Producer(
            row["company"],
            row.get("product"),
            row["generator"],
            row.get("sm2_key_x"),
            bool(row.get("sm2_key_odd_y", False)),
        )
        for uscc in row.get("uscc", []):
            by_uscc[uscc.upper()] = producer
        for name in row.get("names", []):
            by_name[name.casefold()] = producer
    return _Directory(by_uscc, by_name)


def producer_for(code: str | None) -> tuple[Producer, str] | None:
    """The producer a ContentProducer/ContentPropagator value names, and how it matched.

    A 27-character provider code matches by the USCC at characters 5-22; any
    other value matches a bare name exactly (case-insensitive), never a part
    of it ("kling" is Kling, "klingon" is nobody).
    """
    if not code:
        return None
    value = code.strip()
    d = directory()
    if len(value) == _CODE_LENGTH and value.isalnum():
        found = d.by_uscc.get(value[_USCC].upper())
        if found:
            return found, f"USCC {value[_USCC]} in provider code {value}"
    found = d.by_name.get(value.casefold())
    if found:
        return found, f"producer name {value!r}"
    return None


@functools.cache
def pinned_keyring() -> Keyring:
    """The producers' SM2 keys the directory pins, by name (TC260 SecurityData signers)."""
    d = directory()
    ring = Keyring()
    for producer in {*d.by_uscc.values(), *d.by_name.values()}:
        if producer.sm2_key_x:
            key = Sm2PublicKey.from_x(int(producer.sm2_key_x, 16), producer.sm2_key_odd_y)
            if key is None:
                raise ValueError(f"producers.toml: {producer.generator}'s key is not on the curve")
            ring.add(key, set(), name=producer.generator)
    return ring


def _canonical(name: str | None) -> str | None:
    """One display name per generator, whichever finder named it and how.

    A finder may spell a generator its own way ("ByteDance Jimeng", "Google
    Gemini"); the generator table's name for it wins, so evidence from the
    record, the C2PA chain and the pixels adds up under one origin.
    """
    if not name:
        return None
    known = generator(name) or generator_named_in(name)
    return known.name if known else name


def resolve(report: Report) -> dict[str, Any] | None:
    """The report's ``origin``: the best-supported generator, or None without AI evidence.

    Evidence naming the winning generator is listed by id; evidence that says
    AI without naming anyone makes an origin with ``generator`` null and
    ``low`` confidence, so a moderator sees "AI, maker unknown".
    """
    named: dict[str, tuple[str, list[int], dict[str, Any]]] = {}
    anonymous: list[int] = []
    for i, item in enumerate(report.evidence):
        if not item.data.get("ai", True):
            continue  # e.g. a C2PA manifest of a camera photo: no claim of AI
        name = _canonical(item.data.get("generator"))
        if not name:
            anonymous.append(i)
            continue
        confidence = item.data.get("origin_confidence") or _DEFAULT_CONFIDENCE.get(item.kind, "low")
        best, ids, extra = named.get(name, ("low", [], {}))
        if _RANK[confidence] > _RANK[best]:
            best = confidence
        extra = extra or {k: item.data[k] for k in ("company", "product") if item.data.get(k)}
        named[name] = (best, [*ids, i], extra)
    if named:
        # the strongest confidence wins; at equal strength, the most evidence
        name, (confidence, ids, extra) = max(
            named.items(), key=lambda kv: (_RANK[kv[1][0]], len(kv[1][1]))
        )
        gen = generator(name)
        return {
            "generator": name,
            "company": extra.get("company") or (gen.company if gen else None),
            "product": extra.get("product") or (gen.product if gen else None),
            "confidence": confidence,
            "evidence": ids,
        }
    if anonymous and report.classification != "none":
        return {
            "generator": None,
            "company": None,
            "product": None,
            "confidence": "low",
            "evidence": anonymous,
        }
    return None
