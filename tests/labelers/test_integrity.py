"""ReservedCode1/2 signatures: valid, invalid on any change, unknown key, absent."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from labelers import integrity
from labelers.errors import SigningError
from labelers.integrity import Keyring, RecordSigner
from labelers.record import Record, charset_violation

PRODUCER = "0011911100007109120X0010001"
PLATFORM = "0011911100007109120X0020001"
DIGEST = hashlib.sha256(b"pixels").digest()


@pytest.fixture
def signer(tmp_path: Path) -> RecordSigner:
    return RecordSigner.load_or_create(tmp_path / "k.pem")[0]


@pytest.fixture
def ring(signer: RecordSigner) -> Keyring:
    ring = Keyring()
    ring.add(signer.public_key, {PRODUCER, PLATFORM})
    return ring


def _signed(signer: RecordSigner) -> Record:
    record = signer.sign_producer(Record.first_write(PRODUCER, "01JABC"), DIGEST)
    record = record.with_fields(content_propagator=PLATFORM, propagate_id="P-1")
    return signer.sign_platform(record, DIGEST)


def test_signatures_fit_the_record_charset_and_verify(signer, ring) -> None:
    record = _signed(signer)
    assert record.problems() == []
    assert charset_violation(record.reserved_code1) is None
    for role in (integrity.PRODUCER, integrity.PLATFORM):
        assert integrity.verify(role, record, DIGEST, ring).status == "valid"


def test_platform_fields_do_not_break_producer_signature(signer, ring) -> None:
    record = _signed(signer).with_fields(propagate_id="P-2")
    assert integrity.verify(integrity.PRODUCER, record, DIGEST, ring).status == "valid"
    check = integrity.verify(integrity.PLATFORM, record, DIGEST, ring)
    assert check.status == "invalid" and "fields" in check.detail


@pytest.mark.parametrize("field", ["label", "content_producer", "produce_id"])
def test_any_producer_field_change_is_invalid(signer, ring, field) -> None:
    record = _signed(signer)
    changed = record.with_fields(
        **{field: "3" if field == "label" else "X" + getattr(record, field)}
    )
    assert integrity.verify(integrity.PRODUCER, changed, DIGEST, ring).status == "invalid"
    assert integrity.verify(integrity.PLATFORM, changed, DIGEST, ring).status == "invalid"


def test_content_change_is_invalid_and_says_content(signer, ring) -> None:
    check = integrity.verify(integrity.PRODUCER, _signed(signer), b"\0" * 32, ring)
    assert check.status == "invalid" and "content changed" in check.detail


def test_unknown_key_and_absent_and_malformed(signer, tmp_path) -> None:
    other = RecordSigner.load_or_create(tmp_path / "other.pem")[0]
    record = _signed(other)
    ring = Keyring()
    ring.add(signer.public_key, {PRODUCER})
    assert integrity.verify(integrity.PRODUCER, record, DIGEST, ring).status == "unknown-key"
    bare = Record.first_write(PRODUCER, "X")
    assert integrity.verify(integrity.PRODUCER, bare, DIGEST, ring).status == "absent"
    odd = bare.with_fields(reserved_code1="hello")
    assert integrity.verify(integrity.PRODUCER, odd, DIGEST, ring).status == "malformed"


def test_key_registered_for_another_code_is_invalid(signer) -> None:
    ring = Keyring()
    ring.add(signer.public_key, {"0011911100007109120X0010999"})
    check = integrity.verify(integrity.PRODUCER, _signed(signer), DIGEST, ring)
    assert check.status == "invalid" and "not registered" in check.detail


def test_keyring_from_json_and_bad_material(signer) -> None:
    import json

    ring = Keyring.from_json(json.dumps({PRODUCER: signer.public_pem()}))
    assert integrity.verify(integrity.PRODUCER, _signed(signer), DIGEST, ring).status == "valid"
    with pytest.raises(SigningError):
        Keyring.from_json("{nope")
    with pytest.raises(SigningError):
        RecordSigner.from_pem(b"not a key")


def test_key_file_is_created_once_and_private(tmp_path) -> None:
    path = tmp_path / "k.pem"
    first, created = RecordSigner.load_or_create(path)
    again, created_again = RecordSigner.load_or_create(path)
    assert created and not created_again and first.kid == again.kid
    assert path.stat().st_mode & 0o077 == 0
