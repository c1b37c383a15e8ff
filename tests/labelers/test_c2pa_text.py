"""C2PA manifests wrapped into unstructured text: located, verified, damage reported."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

import pytest

from app.dev_credentials import ensure_dev_credentials
from detectors.lookup import NoLookup
from detectors.text import verify_text
from labelers.provenance import C2paSigner
from labelers.record import Record
from labelers.watermark import c2pa_text
from labelers.watermark.text import embed, keys

PRODUCER = "001100000000TESTONLY0010000"
TEXT = "人工智能生成的内容需要添加标识。Text labelled by someone else, with their manifest. "


@pytest.fixture(scope="module")
def signed_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, str]:
    """A real manifest store signed by c2pa (a bare store: its hash is not bound to text)."""
    files = ensure_dev_credentials(tmp_path_factory.mktemp("c2pa"))
    signer = C2paSigner.from_files(files.chain_pem, files.key_pem)
    record = Record.first_write(PRODUCER, "THEIR-ID-1")
    store = signer.sign(TEXT.encode(), "application/c2pa", record, "someone else's model", "t.txt")
    return store, Path(files.ca_pem).read_text()


def test_the_wrapper_is_bom_then_the_magic_in_variation_selectors() -> None:
    wrapper = c2pa_text.wrap(b"\x00\x01\xff")
    assert wrapper[0] == "\ufeff"
    spelled = bytes(
        ord(c) - 0xFE00 if ord(c) < 0xFE10 else ord(c) - 0xE0100 + 16 for c in wrapper[1:]
    )
    assert spelled == b"C2PATXT\x00" + b"\x01" + (3).to_bytes(4, "big") + b"\x00\x01\xff"
    (found,), problems = c2pa_text.find_wrappers("Some text." + wrapper)
    assert found.manifest == b"\x00\x01\xff" and found.version == 1 and problems == []
    assert (found.start, found.end) == (10, 10 + len(wrapper))


def test_a_wrapped_manifest_from_another_signer_is_read_and_its_binding_checked(
    signed_store: tuple[bytes, str],
) -> None:
    store, ca = signed_store
    text = TEXT + c2pa_text.wrap(store)
    found = c2pa_text.read(text, ca)
    assert found is not None and found.provenance is not None
    assert found.provenance.signer and "aigc-label development" in found.provenance.signer
    assert found.provenance.signer_trusted
    assert "c2pa.created" in found.provenance.actions
    assert found.provenance.gb_record["ProduceID"] == "THEIR-ID-1"
    assert found.binding == "mismatch"  # a bare store binds a placeholder, not this text
    report = verify_text(text, NoLookup(), trust_anchors_pem=ca)
    (evidence,) = [e for e in report.evidence if e.kind == "c2pa"]
    assert evidence.carrier == "text:c2pa-wrapper" and evidence.data["ai"] is True
    assert any(f.code == "c2pa-text-binding" for f in report.findings)
    assert report.record is None  # a record not signed for this text is not this text's
    assert report.classification == "suspected"


def test_our_mark_and_a_wrapper_live_side_by_side(signed_store: tuple[bytes, str]) -> None:
    store, _ = signed_store
    marked = embed(TEXT * 3, "01JD8Z5K3M7Q2R4T6V8W0XYZAB") + c2pa_text.wrap(store)
    assert len(keys(marked)) == 1
    assert c2pa_text.read(marked) is not None


def test_the_binding_excludes_the_wrapper_bytes_and_normalises_to_nfc() -> None:
    text = "cafe\u0301 and 中文. "  # NFD on the way in
    wrapper = c2pa_text.wrap(b"store")
    stored = text + wrapper
    start = len(text.encode("utf-8"))
    length = len(wrapper.encode("utf-8"))
    expected = hashlib.sha256(unicodedata.normalize("NFC", text).encode()).digest()
    assert c2pa_text.covered_digest(stored, [(start, length)]) == expected
    assert c2pa_text.covered_digest(stored.replace("中", "申"), [(start, length)]) != expected


def test_a_damaged_wrapper_and_two_wrappers_are_reported() -> None:
    whole = c2pa_text.wrap(b"x" * 40)
    truncated = "Text. " + whole[:30]
    wrappers, problems = c2pa_text.find_wrappers(truncated)
    assert wrappers == [] and problems and problems[0].startswith(c2pa_text.CORRUPTED)
    found = c2pa_text.read(truncated)
    assert found is not None and found.provenance is None and found.problems
    two = "A. " + whole + " B. " + whole
    wrappers, _ = c2pa_text.find_wrappers(two)
    assert len(wrappers) == 2
    found = c2pa_text.read(two)
    assert found is not None and any(p.startswith(c2pa_text.MULTIPLE) for p in found.problems)


def test_text_without_a_wrapper_and_a_stray_bom_read_as_nothing() -> None:
    assert c2pa_text.read("plain text") is None
    assert c2pa_text.read("\ufeffplain text with a BOM \ufeff\ufe0f") is None
    assert re.search("\ufeff", c2pa_text.wrap(b""))
