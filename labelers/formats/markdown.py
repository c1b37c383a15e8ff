"""Markdown files: the record in the front matter, and the text around it.

The record goes in the front matter as a block mapping under ``AIGC:`` with
the seven Annex E keys (the TC260 text-file guide's placement); a file whose
front matter is TOML (``+++``, Hugo's) gets an ``[AIGC]`` table in it instead,
so the file keeps the one front matter its site generator reads. Writing edits
the front matter text surgically (only the AIGC entry is replaced or
appended), so other keys, their order, comments and formatting survive; the
result is re-read (``yaml.safe_load`` or ``tomllib``) and compared before it is
returned. Reading accepts the AIGC value as a mapping or as a JSON string
(wrapped or bare).

:func:`decode` / :func:`encode` are shared with ``labelers/visible/markup.py``
and where the front matter sits is :mod:`labelers.formats.frontmatter`'s, so
the container is understood in one place.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from typing import Any

import yaml

from labelers.errors import CorruptInput, InvalidRecord, LimitExceeded, UnsupportedMedia
from labelers.formats import (
    Capability,
    ContentHasher,
    FoundRecord,
    Kind,
    Metadata,
    frontmatter,
    text_head,
)
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.record import Record

MEDIA_TYPE = "text/markdown"
CARRIER = "markdown:front-matter:AIGC"
_BOM = "\ufeff"
# a top-level key named AIGC (any case, optionally quoted) at column 0; the line
# may end in CRLF (a bare "$" does not match before "\r\n", which left the old
# block in place on relabelling CRLF files, so they got a second AIGC block)
_AIGC_KEY = re.compile(r"""^(["']?)aigc\1[ \t]*:(?:[ \t]|\r?$)""", re.IGNORECASE)


@dataclass
class Decoded:
    text: str  # without the BOM
    bom: bool
    newline: str  # the file's line ending, used for lines we add


def decode(data: bytes, limits: Limits = DEFAULT_LIMITS, what: str = "Markdown") -> Decoded:
    """UTF-8 text of ``data``, with limits checked first."""
    limits.check("max_bytes", len(data), "the file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnsupportedMedia(
            f"{what} must be UTF-8; byte {exc.start} is not valid UTF-8"
        ) from None
    limits.check("max_text_chars", len(text), "the text")
    bom = text.startswith(_BOM)
    if bom:
        text = text[1:]
    first_break = text.find("\n")
    newline = "\r\n" if first_break > 0 and text[first_break - 1] == "\r" else "\n"
    return Decoded(text, bom, newline)


def encode(doc: Decoded, text: str) -> bytes:
    return ((_BOM if doc.bom else "") + text).encode("utf-8")


#: most nodes the front matter may hold once aliases are counted where they are
#: used. PyYAML shares an aliased node rather than copying it, so loading is
#: cheap, but anything that walks the result (comparing, serialising, the
#: detectors) pays for every use: nested aliases make a 561-byte file cost
#: gigabytes. Real front matter has tens of nodes.
MAX_YAML_NODES = 10_000
#: longest front matter parsed, YAML or TOML (PyYAML's pure-Python scanner costs
#: ~10 us a character, tomllib less)
MAX_FRONT_MATTER_CHARS = 1_000_000


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses documents whose expanded size is over budget."""

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        if node is not None:
            _expanded_size(node)
        return node


def _expanded_size(root: yaml.Node) -> int:
    """Nodes in ``root`` with every alias expanded; CorruptInput over the budget or on a cycle.

    Memoised per node, so it costs one visit per distinct node however much the
    aliases multiply; iterative, so deep nesting does not hit the recursion limit.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            children = _children(node)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > MAX_YAML_NODES:
                raise CorruptInput(
                    f"the front matter expands to more than {MAX_YAML_NODES} YAML nodes "
                    "(nested aliases); refusing it"
                )
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise CorruptInput("the front matter's YAML refers to itself through an alias")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_size(front_matter: str) -> None:
    if len(front_matter) > MAX_FRONT_MATTER_CHARS:
        raise LimitExceeded(
            f"the front matter has {len(front_matter)} characters, over the limit of "
            f"{MAX_FRONT_MATTER_CHARS}"
        )


def _load(yaml_text: str) -> Any:
    _check_size(yaml_text)
    try:
        return yaml.load(yaml_text, Loader=_BoundedLoader)
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        raise CorruptInput(f"the front matter is not valid YAML: {exc}") from None


# a top-level TOML table header naming AIGC (bare or quoted, any case), and any
# table header (the end of the table before it)
_TOML_AIGC_TABLE = re.compile(r"""^[ \t]*\[[ \t]*(["']?)aigc\1[ \t]*\][ \t]*(?:#.*)?$""", re.I)
_TOML_TABLE = re.compile(r"^[ \t]*\[")
# a top-level key-value line naming AIGC (before the first table header)
_TOML_AIGC_KEY = re.compile(r"""^[ \t]*(["']?)aigc\1[ \t]*=""", re.IGNORECASE)


def _load_toml(toml_text: str) -> dict[str, Any]:
    _check_size(toml_text)
    try:
        return tomllib.loads(toml_text)
    except (tomllib.TOMLDecodeError, RecursionError, ValueError) as exc:
        raise CorruptInput(f"the front matter is not valid TOML: {exc}") from None


def _toml_has_aigc(toml_text: str) -> bool:
    return any(
        _TOML_AIGC_TABLE.match(line) or _TOML_AIGC_KEY.match(line)
        for line in toml_text.splitlines()
    )


def _without_toml_aigc(toml_text: str) -> str:
    """``toml_text`` without its ``[AIGC]`` table(s) and top-level ``AIGC = ...`` lines."""
    out: list[str] = []
    in_aigc_table = False
    before_tables = True
    for line in toml_text.splitlines(keepends=True):
        if _TOML_TABLE.match(line):
            before_tables = False
            in_aigc_table = bool(_TOML_AIGC_TABLE.match(line))
            if in_aigc_table:
                continue
        if in_aigc_table or (before_tables and _TOML_AIGC_KEY.match(line)):
            continue
        out.append(line)
    return "".join(out)


def _toml_string(value: str) -> str:
    """A TOML basic string: a JSON string is one, bar DEL, which TOML wants escaped."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007F")


def toml_table(record: Record, newline: str = "\n") -> str:
    """The ``[AIGC]`` table: seven keys, values as basic strings."""
    lines = ["[AIGC]"] + [f"{k} = {_toml_string(v)}" for k, v in record.as_dict().items()]
    return newline.join(lines) + newline


def _with_toml_record(toml_text: str, record: Record, newline: str) -> str:
    """The TOML front matter with ``record`` as its one AIGC table, checked by re-reading."""
    old = _load_toml(toml_text)
    kept = _without_toml_aigc(toml_text)
    if kept and not kept.endswith("\n"):
        kept += newline
    new_text = kept + toml_table(record, newline)
    try:
        new = _load_toml(new_text)
    except CorruptInput:
        new = {}
    if {k: v for k, v in new.items() if k.upper() != "AIGC"} != {
        k: v for k, v in old.items() if k.upper() != "AIGC"
    } or new.get("AIGC") != record.as_dict():
        # e.g. an AIGC value in a multi-line string: refuse rather than guess
        raise CorruptInput(
            "the front matter's AIGC entry could not be replaced without changing other keys"
        )
    return new_text


def _found(value: Any) -> FoundRecord:
    if isinstance(value, str):
        raw = value
        try:
            return FoundRecord(CARRIER, raw, Record.parse(value))
        except InvalidRecord as exc:
            return FoundRecord(CARRIER, raw, None, exc.detail)
    raw = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    try:
        return FoundRecord(CARRIER, raw, Record.from_mapping(value))
    except InvalidRecord as exc:
        return FoundRecord(CARRIER, raw, None, exc.detail)


def _yaml_has_aigc(yaml_text: str) -> bool:
    return any(_AIGC_KEY.match(line) for line in yaml_text.splitlines())


def record_block(record: Record, newline: str = "\n") -> str:
    """The ``AIGC:`` block: seven keys, values double-quoted (JSON strings are YAML)."""
    lines = ["AIGC:"] + [f"  {k}: {json.dumps(v)}" for k, v in record.as_dict().items()]
    return newline.join(lines) + newline


def _replace_aigc_blocks(yaml_text: str, block: str) -> str:
    """``yaml_text`` with every top-level AIGC entry removed and ``block`` in the first's place."""
    lines = yaml_text.splitlines(keepends=True)
    out: list[str] = []
    placed = False
    i = 0
    while i < len(lines):
        if _AIGC_KEY.match(lines[i]):
            j = i + 1
            # the entry continues over indented lines (and blank lines between them)
            while j < len(lines):
                if lines[j][:1] in (" ", "\t"):
                    j += 1
                    continue
                if not lines[j].strip():
                    k = j
                    while k < len(lines) and not lines[k].strip():
                        k += 1
                    if k < len(lines) and lines[k][:1] in (" ", "\t"):
                        j = k
                        continue
                break
            if not placed:
                out.append(block)
                placed = True
            i = j
            continue
        out.append(lines[i])
        i += 1
    if not placed:
        if out and not out[-1].endswith("\n"):
            out[-1] += "\r\n" if block.endswith("\r\n") else "\n"
        out.append(block)
    return "".join(out)


def with_record(text: str, record: Record, newline: str = "\n") -> str:
    """``text`` (Markdown, no BOM) with ``record`` as its one front-matter AIGC entry."""
    block = record_block(record, newline)
    fm = frontmatter.split(text)
    if fm is None:
        return f"---{newline}{block}---{newline}{text}"
    if fm.syntax == frontmatter.TOML:
        new_toml = _with_toml_record(fm.inner(text), record, newline)
        return text[: fm.inner_start] + new_toml + text[fm.inner_end :]
    old_yaml = fm.inner(text)
    old = _load(old_yaml)
    if old is not None and not isinstance(old, dict):
        raise CorruptInput(
            "the front matter is YAML but not a mapping, so an AIGC key cannot be added to it"
        )
    new_yaml = _replace_aigc_blocks(old_yaml, block)
    new = _load(new_yaml)
    keep = {k: v for k, v in (old or {}).items() if str(k).upper() != "AIGC"}
    if (
        not isinstance(new, dict)
        or {k: v for k, v in new.items() if str(k).upper() != "AIGC"} != keep
        or new.get("AIGC") != record.as_dict()
    ):
        # e.g. a flow-style AIGC entry spanning unindented lines: refuse rather than guess
        raise CorruptInput(
            "the front matter's AIGC entry could not be replaced without changing other keys"
        )
    return text[: fm.inner_start] + new_yaml + text[fm.inner_end :]


class MarkdownHandler:
    name = "Markdown"
    media_type = MEDIA_TYPE
    media_types = (MEDIA_TYPE,)
    kind = Kind.DOCUMENT
    capabilities = frozenset(
        {
            Capability.RECORD,
            Capability.VISIBLE,
            Capability.WATERMARK,
            Capability.DIGEST,
            Capability.TEXT_PAGES,
            Capability.TEXT_BODY,
        }
    )
    paged_types = ()

    def accept(self, data: bytes) -> str | None:
        """Front matter, or a few Markdown marks (headings, lists, links) in the text.

        Asked after HTML, which takes front matter over an HTML document.
        """
        text = text_head(data)
        if text is None:
            return None
        head = text.lstrip("\ufeff \t\r\n")
        if head.startswith(("---\n", "---\r\n", "+++\n", "+++\r\n")) or _looks_like_markdown(text):
            return MEDIA_TYPE
        return None

    def draw_label(
        self,
        data: bytes,
        media_type: str,
        wording: str,
        placement: str,
        pages: str,
        limits: Limits = DEFAULT_LIMITS,
    ) -> bytes:
        """``data`` with a visible label (labelers.visible.markup)."""
        from labelers.visible import markup

        return markup.label_markdown(data, wording, placement)

    def embed_watermark(
        self, data: bytes, record: Record, limits: Limits = DEFAULT_LIMITS
    ) -> bytes:
        """The invisible text mark in the prose; front matter, code and URLs stay untouched.

        Markdown is text: the payload survives copying a paragraph out of the
        rendered page.
        """
        from labelers.watermark import text as text_watermark

        doc = decode(data, limits)
        return encode(doc, text_watermark.embed(doc.text, record.produce_id, limits=limits))

    def read(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> Metadata:
        doc = decode(data, limits)
        meta = Metadata(media_type=MEDIA_TYPE)
        fm = frontmatter.split(doc.text)
        body = doc.text
        if fm is not None:
            body = doc.text[fm.body_start :]
            inner = fm.inner(doc.text)
            toml = fm.syntax == frontmatter.TOML
            try:
                loaded = _load_toml(inner) if toml else _load(inner)
            except CorruptInput as exc:
                loaded = None
                if _toml_has_aigc(inner) if toml else _yaml_has_aigc(inner):
                    meta.records.append(FoundRecord(CARRIER, inner, None, exc.detail))
            if isinstance(loaded, dict):
                for key, value in loaded.items():
                    if str(key).upper() == "AIGC":
                        meta.records.append(_found(value))
                    elif isinstance(value, str | int | float | bool):
                        meta.properties[f"markdown:front-matter:{key}"] = str(value)
        meta.text_pages = [body]
        return meta

    def write_record(self, data: bytes, record: Record, limits: Limits = DEFAULT_LIMITS) -> bytes:
        record.validate()
        doc = decode(data, limits)
        return encode(doc, with_record(doc.text, record, doc.newline))

    def content_digest(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
        """SHA-256 of the text with the front matter's AIGC entry left out.

        Covers the front matter's YAML text with every top-level ``AIGC:`` entry
        removed (the same removal write_record does before it puts the new block
        in), and the body after the front matter, character for character: the
        visible label, the invisible text watermark, line endings and other
        front-matter keys and comments all count.

        Left out: the AIGC entry, the fence lines, a leading BOM. A front matter
        holding nothing else is the same as none, so the front matter write_record
        adds to a file that had none does not move the digest.
        """
        doc = decode(data, limits)
        hasher = ContentHasher(MEDIA_TYPE)
        fm = frontmatter.split(doc.text)
        if fm is None:
            return hasher.add("", doc.text).digest()
        inner = fm.inner(doc.text)
        if fm.syntax == frontmatter.TOML:
            inner = _without_toml_aigc(inner)
        elif _yaml_has_aigc(inner):
            inner = _replace_aigc_blocks(inner, "")
        return hasher.add(inner, doc.text[fm.body_start :]).digest()


def _looks_like_markdown(text: str) -> bool:
    lines = text.splitlines()[:200]
    marks = sum(
        1
        for line in lines
        if line.startswith(("# ", "## ", "### ", "```", "- ", "* ", "> ")) or "](" in line
    )
    return marks >= 2


HANDLER = MarkdownHandler()
