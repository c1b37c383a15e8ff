"""The contract every registered format handler keeps, checked over the registry.

A new container is one module in labelers/formats, one line in
``labelers.formats.REGISTRY`` and one test module. Its test module
(``tests/labelers/formats/test_<registry name>.py``) offers
``contract_sample() -> bytes`` (a small file without a record) and this
module holds the handler to the contract: sniffed from its own magic, one
record after write_record (however often), a content digest that
write_record leaves alone and a visible label moves, and truncated input
refused with the project's own error.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import pytest

from labelers.errors import AigcError
from labelers.formats import (
    REGISTRY,
    Capability,
    FormatHandler,
    Kind,
    get_handler,
    handlers,
    sniff_handler,
)
from labelers.record import Record
from tests.fuzz.mutate import SEED_BUILDERS

PRODUCER = "0011911100007109120X0010001"
RECORD = Record.first_write(PRODUCER, "01JCONTRACTXXXXXXXXXXXXXX1")
OTHER = Record.first_write(PRODUCER, "01JCONTRACTXXXXXXXXXXXXXX2").with_fields(
    content_propagator="0011911100007109120X0020001", propagate_id="P-2"
)


def _sample_builder(name: str, handler: FormatHandler) -> Callable[[], bytes] | None:
    try:
        module = importlib.import_module(f"tests.labelers.formats.test_{name}")
    except ModuleNotFoundError:
        module = None
    if module is not None and hasattr(module, "contract_sample"):
        return module.contract_sample
    for media_type in handler.media_types:
        if media_type in SEED_BUILDERS:
            return SEED_BUILDERS[media_type]
    return None


HANDLERS = list(zip(REGISTRY, handlers(), strict=True))
RECORD_HANDLERS = [(n, h) for n, h in HANDLERS if Capability.RECORD in h.capabilities]


def _sample(name: str, handler: FormatHandler) -> bytes:
    builder = _sample_builder(name, handler)
    assert builder is not None, (
        f"add contract_sample() to tests/labelers/formats/test_{name}.py: "
        f"the {handler.name} handler has no sample for the registry contract"
    )
    try:
        return builder()
    except (KeyError, OSError) as exc:  # e.g. no AVIF encoder in this Pillow
        pytest.skip(f"no {handler.name} sample here: {exc}")


def test_the_registry_is_one_list_of_distinct_handlers_of_known_kinds() -> None:
    assert len(set(REGISTRY)) == len(REGISTRY)
    served = [t for _, h in HANDLERS for t in h.media_types]
    assert len(served) == len(set(served)), "two handlers claim one media type"
    for name, handler in HANDLERS:
        assert handler.kind in Kind, name
        assert set(handler.capabilities) <= set(Capability), name
        assert handler.media_type in handler.media_types, name
        assert set(handler.paged_types) <= set(handler.media_types), name
        for media_type in handler.media_types:
            assert get_handler(media_type) is handler


@pytest.mark.parametrize(("name", "handler"), HANDLERS, ids=[n for n, _ in HANDLERS])
def test_a_handler_recognises_its_own_files_and_no_other_handler_does(
    name: str, handler: FormatHandler
) -> None:
    data = _sample(name, handler)
    found, media_type = sniff_handler(data)
    assert found is handler and media_type in handler.media_types
    assert handler.accept(data) == media_type
    # handlers asked before this one must not take its files
    for other_name, other in HANDLERS[: REGISTRY.index(name)]:
        assert other.accept(data) is None, f"{other_name} takes {name} files"


@pytest.mark.parametrize(("name", "handler"), RECORD_HANDLERS, ids=[n for n, _ in RECORD_HANDLERS])
def test_write_record_leaves_exactly_one_record_and_the_content_digest(
    name: str, handler: FormatHandler
) -> None:
    data = _sample(name, handler)
    assert [f for f in handler.read(data).records if f.record is not None] == []
    once = handler.write_record(data, RECORD)
    twice = handler.write_record(once, OTHER)  # relabelling replaces, never adds
    for out, expected in ((once, RECORD), (twice, OTHER)):
        found = handler.read(out).records
        # one record; a format may mirror it in a second carrier (PDF: Info and XMP)
        assert {f.record for f in found} == {expected}, name
        carriers = [f.carrier for f in found]
        assert len(carriers) == len(set(carriers)), carriers
        assert handler.content_digest(out) == handler.content_digest(data), name
    assert sniff_handler(twice)[0] is handler


VISIBLE_HANDLERS = [
    (n, h)
    for n, h in RECORD_HANDLERS
    if Capability.VISIBLE in h.capabilities and Capability.DIGEST in h.capabilities
]


@pytest.mark.parametrize(
    ("name", "handler"), VISIBLE_HANDLERS, ids=[n for n, _ in VISIBLE_HANDLERS]
)
def test_a_visible_label_moves_the_content_digest(name: str, handler: FormatHandler) -> None:
    from labelers.pipeline import FileOptions, label_file

    data = _sample(name, handler)
    labelled = label_file(data, RECORD, FileOptions(watermark=False, c2pa=False)).data
    assert handler.content_digest(labelled) != handler.content_digest(data), name
    assert handler.content_digest(labelled) == handler.content_digest(
        handler.write_record(labelled, OTHER)
    )


#: handlers whose parser repairs a cut file instead of refusing it (a follow-up)
REPAIRS_TRUNCATION = {
    "pdf": "pypdf rebuilds the cross-reference table of a PDF cut in half and reads "
    "the pages that are left",
}

# binary containers: a text file cut short is still a text file
BINARY_HANDLERS = [(n, h) for n, h in RECORD_HANDLERS if Capability.TEXT_BODY not in h.capabilities]


@pytest.mark.parametrize(("name", "handler"), BINARY_HANDLERS, ids=[n for n, _ in BINARY_HANDLERS])
def test_a_truncated_file_is_refused_with_the_projects_error(
    name: str, handler: FormatHandler
) -> None:
    data = handler.write_record(_sample(name, handler), RECORD)
    refused = 0
    for cut in (len(data) // 2, len(data) - 3):
        truncated = data[:cut]
        for step in (
            lambda d: handler.read(d),
            lambda d: handler.write_record(d, OTHER),
            lambda d: handler.content_digest(d),
        ):
            try:
                step(truncated)
            except AigcError:
                refused += 1
            # anything else (IndexError, struct.error, ...) fails the test
    if name in REPAIRS_TRUNCATION:
        pytest.xfail(REPAIRS_TRUNCATION[name])
    assert refused, f"{name}: a truncated file was read, rewritten and digested as if whole"


RACE = """
import importlib, threading
from labelers import formats
markdown = "# title\\n\\n- one\\n- two\\n\\nsome prose\\n".encode()
start = threading.Barrier(16)
seen = []
def sniff():
    start.wait()
    seen.append(formats.sniff(markdown))
threads = [threading.Thread(target=sniff) for _ in range(16)]
for t in threads: t.start()
for t in threads: t.join()
loaded = list(formats.handlers())  # the rest, after what the threads loaded
expected = [importlib.import_module("labelers.formats." + n).HANDLER for n in formats.REGISTRY]
print(sorted(set(seen)), loaded == expected)
"""


def test_the_first_sniffs_of_many_threads_at_once_load_the_registry_in_order():
    """A fresh process (nothing loaded yet), 16 threads sniffing at the same moment:
    every one sees Markdown, and the loaded list is the registry, once each, in order."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", RACE], capture_output=True, text=True, timeout=60)
    assert out.stdout.split("\n")[0] == "['text/markdown'] True", out.stderr[-2000:]
