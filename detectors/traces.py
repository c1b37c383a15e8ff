"""Other generators' traces: what AI tools leave in the files they write.

The facts live in one data table, ``generators.toml`` next to this module
(generator names and signers, trace properties, value patterns, IPTC digital
source types); this module loads it once and applies it. Traces make content
*suspected* AI-generated (Measures Art. 6(3)) when no record is present, and
name the generator for the report's origin.
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from detectors.report import IPTC, TRACE, Evidence

# how much of a property value the patterns see: bounds the time per file
_MAX_VALUE_CHARS = 8192
# where a file names the software that wrote it
_SOFTWARE_KEYS = (
    "exif:Software",
    "exif:Make",
    "exif:Model",
    "exif:Artist",
    "png:tEXt:Software",
    "png:tEXt:Source",
    "xmp:CreatorTool",
    "pdf:Info:/Producer",
    "pdf:Info:/Creator",
    "ooxml:app:Application",
    "video:encoder",
    "video:handler",
)


#: XMP properties the traces look at, as property keys -> (namespace, name)
XMP_TRACE_PROPERTIES = {
    "xmp:CreatorTool": ("http://ns.adobe.com/xap/1.0/", "CreatorTool"),
    "xmp:dc:description": ("http://purl.org/dc/elements/1.1/", "description"),
}


@dataclass(frozen=True)
class Generator:
    name: str  # display name, e.g. "OpenAI ChatGPT / DALL-E"
    company: str | None = None
    product: str | None = None


@dataclass(frozen=True)
class SourceType:
    code: str  # e.g. "trainedAlgorithmicMedia"
    meaning: str
    ai: bool


@dataclass(frozen=True)
class _Pattern:
    generator: str
    summary: str
    clauses: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...]


@dataclass(frozen=True)
class _Table:
    generators: dict[str, Generator]
    names: re.Pattern[str]  # alternation of every product name, whole words
    name_owner: dict[str, str]  # casefolded name -> generator
    organisation_words: re.Pattern[str]  # alternation of every organisation, whole words
    organisations: dict[str, str]  # casefolded organisation -> generator
    properties: dict[str, tuple[str, str]]  # key -> (generator, summary)
    patterns: tuple[_Pattern, ...]
    source_types: dict[str, SourceType]


def _words(names: list[str]) -> re.Pattern[str]:
    # longest first, so "Adobe Firefly" wins over "Firefly"; literals only, so
    # the alternation runs in linear time whatever the value
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf"(?<![0-9A-Za-z])(?:{alternatives})(?![0-9A-Za-z])", re.IGNORECASE)


@functools.cache
def table() -> _Table:
    raw: dict[str, Any] = tomllib.loads(
        resources.files("detectors").joinpath("generators.toml").read_text("utf-8")
    )
    generators: dict[str, Generator] = {}
    name_owner: dict[str, str] = {}
    organisations: dict[str, str] = {}
    for row in raw.get("generator", []):
        gen = Generator(row["name"], row.get("company"), row.get("product"))
        generators[gen.name] = gen
        for name in row.get("names", []):
            name_owner[name.casefold()] = gen.name
        for org in row.get("organisations", []):
            organisations[org.casefold()] = gen.name
    properties = {row["key"]: (row["generator"], row["summary"]) for row in raw.get("property", [])}
    patterns = tuple(
        _Pattern(
            row["generator"],
            row["summary"],
            tuple((tuple(c["keys"]), re.compile(c["regex"])) for c in row["all"]),
        )
        for row in raw.get("pattern", [])
    )
    source_types = {
        row["code"]: SourceType(row["code"], row["meaning"], bool(row["ai"]))
        for row in raw.get("source_type", [])
    }
    for gen_name, _ in [*properties.values(), *((p.generator, "") for p in patterns)]:
        if gen_name not in generators:
            raise ValueError(f"generators.toml: unknown generator {gen_name!r}")
    return _Table(
        generators,
        _words(list(name_owner)),
        name_owner,
        _words(list(organisations)),
        organisations,
        properties,
        patterns,
        source_types,
    )


def generator(name: str) -> Generator | None:
    return table().generators.get(name)


def generator_named_in(text: str | None) -> Generator | None:
    """The AI tool a software string names ("Adobe Firefly", "gpt-image 2.0"), if any."""
    if not text:
        return None
    t = table()
    match = t.names.search(text[:_MAX_VALUE_CHARS])
    return t.generators[t.name_owner[match.group(0).casefold()]] if match else None


def generator_signing_as(*names: str | None) -> Generator | None:
    """The generator whose organisation a signer's issuer or common name names.

    Whole words, so "Adobe Inc." and "OpenAI OpCo, LLC" match without listing
    every legal suffix, and "Googleplex Ltd" matches nobody.
    """
    t = table()
    for name in names:
        match = t.organisation_words.search(name[:_MAX_VALUE_CHARS]) if name else None
        if match:
            return t.generators[t.organisations[match.group(0).casefold()]]
    return None


def source_type(uri: str | None) -> SourceType | None:
    """What an IPTC digital source type (full URI or bare code) means; None if unknown."""
    if not uri:
        return None
    code = uri.rstrip("/").rsplit("/", 1)[-1]
    return table().source_types.get(code)


def is_ai_source_type(uri: str | None) -> bool:
    known = source_type(uri)
    return bool(known and known.ai)


def _trace(carrier: str, summary: str, gen: Generator, data: dict[str, Any]) -> Evidence:
    return Evidence(TRACE, carrier, summary, {**data, "generator": gen.name})


def generator_traces(properties: dict[str, str]) -> list[Evidence]:
    """Evidence for every generator trace the table knows in these properties."""
    t = table()
    out: list[Evidence] = []
    for key, (gen_name, summary) in t.properties.items():
        value = properties.get(key)
        if value:
            gen = t.generators[gen_name]
            out.append(_trace(key, f"{summary} found", gen, {"excerpt": value[:200]}))
    for pattern in t.patterns:
        matched: dict[str, str] = {}
        for keys, regex in pattern.clauses:
            key = next(
                (k for k in keys if regex.search(properties.get(k, "")[:_MAX_VALUE_CHARS])), None
            )
            if key is None:
                break
            matched[key] = properties[key][:200]
        else:
            gen = t.generators[pattern.generator]
            out.append(_trace(", ".join(matched), pattern.summary, gen, {"values": matched}))
    for key in _SOFTWARE_KEYS:
        value = properties.get(key, "")
        gen = generator_named_in(value)
        if gen is not None:
            out.append(
                _trace(
                    key,
                    f"written by a known AI generator ({gen.name})",
                    gen,
                    {"value": value[:200]},
                )
            )
    return out


def iptc_evidence(source_type_uri: str | None) -> list[Evidence]:
    if not source_type_uri:
        return []
    known = source_type(source_type_uri)
    meaning = known.meaning if known else source_type_uri.rsplit("/", 1)[-1]
    return [
        Evidence(
            IPTC,
            "xmp:Iptc4xmpExt:DigitalSourceType",
            f"IPTC digital source type: {meaning}",
            {"digital_source_type": source_type_uri, "ai": bool(known and known.ai)},
        )
    ]
