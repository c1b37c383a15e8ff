"""ReservedCode1/2 signatures (Ed25519 and SM2/SM3): valid, invalid on any change, unknown
key, absent; SM3/SM2 checked against the standard's vectors and against OpenSSL."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from labelers import integrity
from labelers.errors import SigningError
from labelers.integrity import Keyring, RecordSigner
from labelers.record import Record, charset_violation

PRODUCER = "0011911100007109120X0010001"
PLATFORM = "0011911100007109120X0020001"
DIGEST = hashlib.sha256(b"pixels").digest()


@pytest.fixture(params=["ed25519", "sm2"])
def scheme(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def signer(tmp_path: Path, scheme: str) -> RecordSigner:
    return RecordSigner.load_or_create(tmp_path / "k.pem", scheme)[0]


@pytest.fixture
def ring(signer: RecordSigner) -> Keyring:
    ring = Keyring()
    ring.add(signer.public_key, {PRODUCER, PLATFORM})
    return ring


def _signed(signer: RecordSigner) -> Record:
    record = signer.sign_producer(Record.first_write(PRODUCER, "01JABC"), DIGEST)
    record = record.with_fields(content_propagator=PLATFORM, propagate_id="P-1")
    return signer.sign_platform(record, DIGEST)


def test_signatures_fit_the_record_charset_and_verify(signer, ring, scheme) -> None:
    record = _signed(signer)
    assert record.problems() == []
    assert charset_violation(record.reserved_code1) is None
    assert charset_violation(record.reserved_code2) is None
    prefix = {"ed25519": "ED25519.", "sm2": "SM2."}[scheme]
    assert record.reserved_code1.startswith(prefix) and record.reserved_code2.startswith(prefix)
    for role in (integrity.PRODUCER, integrity.PLATFORM):
        assert integrity.verify(role, record, DIGEST, ring).status == "valid"


def test_platform_fields_do_not_break_producer_signature(signer, ring) -> None:
    record = _signed(signer).with_fields(propagate_id="P-2")
    assert integrity.verify(integrity.PRODUCER, record, DIGEST, ring).status == "valid"
    check = integrity.verify(integrity.PLATFORM, record, DIGEST, ring)
    assert check.status == "invalid-field" and "fields" in check.detail


@pytest.mark.parametrize("field", ["label", "content_producer", "produce_id"])
def test_any_producer_field_change_is_invalid(signer, ring, field) -> None:
    record = _signed(signer)
    changed = record.with_fields(
        **{field: "3" if field == "label" else "X" + getattr(record, field)}
    )
    assert integrity.verify(integrity.PRODUCER, changed, DIGEST, ring).status == "invalid-field"
    assert integrity.verify(integrity.PLATFORM, changed, DIGEST, ring).status == "invalid-field"


def test_content_change_is_invalid_and_says_content(signer, ring) -> None:
    check = integrity.verify(integrity.PRODUCER, _signed(signer), b"\0" * 32, ring)
    assert check.status == "invalid-content" and "content changed" in check.detail


def test_unknown_key_and_absent_and_malformed(signer, tmp_path, scheme) -> None:
    other = RecordSigner.load_or_create(tmp_path / "other.pem", scheme)[0]
    record = _signed(other)
    ring = Keyring()
    ring.add(signer.public_key, {PRODUCER})
    assert integrity.verify(integrity.PRODUCER, record, DIGEST, ring).status == "unknown-key"
    bare = Record.first_write(PRODUCER, "X")
    assert integrity.verify(integrity.PRODUCER, bare, DIGEST, ring).status == "absent"
    # a vendor's own token is not ours to judge: unverifiable, never malformed
    odd = bare.with_fields(reserved_code1="hello")
    assert integrity.verify(integrity.PRODUCER, odd, DIGEST, ring).status == "unverifiable"
    broken = bare.with_fields(reserved_code1="SM2.abc.def")
    assert integrity.verify(integrity.PRODUCER, broken, DIGEST, ring).status == "malformed"


def test_key_registered_for_another_code_is_invalid(signer) -> None:
    ring = Keyring()
    ring.add(signer.public_key, {"0011911100007109120X0010999"})
    check = integrity.verify(integrity.PRODUCER, _signed(signer), DIGEST, ring)
    assert check.status == "invalid-field" and "not registered" in check.detail


def test_keyring_from_json_and_bad_material(signer) -> None:
    ring = Keyring.from_json(json.dumps({PRODUCER: signer.public_pem()}))
    assert integrity.verify(integrity.PRODUCER, _signed(signer), DIGEST, ring).status == "valid"
    with pytest.raises(SigningError):
        Keyring.from_json("{nope")
    with pytest.raises(SigningError):
        RecordSigner.from_pem(b"not a key")


def test_key_file_is_created_once_and_private(tmp_path, scheme) -> None:
    path = tmp_path / "k.pem"
    first, created = RecordSigner.load_or_create(path, scheme)
    again, created_again = RecordSigner.load_or_create(path, scheme)
    assert created and not created_again and first.kid == again.kid
    assert first.scheme == again.scheme == scheme
    assert path.stat().st_mode & 0o077 == 0
    # the other scheme's key file is never silently reused
    other = "sm2" if scheme == "ed25519" else "ed25519"
    with pytest.raises(SigningError, match="expected"):
        RecordSigner.load_or_create(path, other)


def test_a_key_of_one_scheme_does_not_verify_a_field_claiming_the_other(tmp_path) -> None:
    ed = RecordSigner.load_or_create(tmp_path / "ed.pem", "ed25519")[0]
    record = ed.sign_producer(Record.first_write(PRODUCER, "01JABC"), DIGEST)
    relabelled = record.with_fields(reserved_code1="SM2." + record.reserved_code1.split(".", 1)[1])
    ring = Keyring()
    ring.add(ed.public_key, {PRODUCER})
    assert integrity.verify(integrity.PRODUCER, relabelled, DIGEST, ring).status == "invalid-field"


# --- SM3 / SM2 against the standards and an independent implementation -------


def test_sm3_matches_the_gb_t_32905_vectors() -> None:
    from gmssl import sm3

    assert sm3.sm3_hash(list(b"abc")) == (
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    )
    assert sm3.sm3_hash(list(b"abcd" * 16)) == (
        "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
    )


def test_sm2_round_trips_with_fresh_keys_and_rejects_changes() -> None:
    for _ in range(4):
        key = integrity.Sm2PrivateKey.generate()
        signature = key.sign(b"message")
        assert len(signature) == 64
        assert key.public_key().verify(signature, b"message")
        assert not key.public_key().verify(signature, b"messagE")
        flipped = bytes([signature[0] ^ 1]) + signature[1:]
        assert not key.public_key().verify(flipped, b"message")
        # r = 0 and s = n are outside [1, n-1]: rejected, not passed to gmssl
        assert not key.public_key().verify(bytes(32) + signature[32:], b"message")
        n = integrity._N.to_bytes(32, "big")
        assert not key.public_key().verify(signature[:32] + n, b"message")


def test_sm2_public_keys_load_in_every_documented_form_whatever_their_leading_digits() -> None:
    # gmssl strips "04" with str.lstrip: keys whose x starts with 0 or 4 are the risky ones
    seen = set()
    while len(seen) < 2:
        key = integrity.Sm2PrivateKey.generate()
        lead = key.public_key().point[1:].hex()[0]
        if lead not in "04":
            continue
        seen.add(lead)
        point = key.public_key().point
        for text in (point.hex(), point[1:].hex(), key.public_key().pem()):
            ring = Keyring()
            ring.add_pem(text, {PRODUCER})
            record = RecordSigner(key).sign_producer(Record.first_write(PRODUCER, "X"), DIGEST)
            assert integrity.verify(integrity.PRODUCER, record, DIGEST, ring).status == "valid"


def test_sm2_rejects_points_off_the_curve_and_foreign_pem() -> None:
    point = integrity.Sm2PrivateKey.generate().public_key().point
    with pytest.raises(SigningError, match="curve"):
        Keyring().add_pem((point[:-1] + bytes([point[-1] ^ 1])).hex(), {PRODUCER})
    with pytest.raises(SigningError):
        Keyring().add_pem("zz", {PRODUCER})
    with pytest.raises(SigningError):
        RecordSigner.from_pem(b"-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n")


def test_sm2_keyring_from_json_and_record_key_from_pem(tmp_path) -> None:
    signer = RecordSigner.load_or_create(tmp_path / "k.pem", "sm2")[0]
    again = RecordSigner.from_pem((tmp_path / "k.pem").read_bytes())
    assert again.scheme == "sm2" and again.kid == signer.kid
    point_hex = signer.public_key.point.hex()
    ring = Keyring.from_json(json.dumps({PRODUCER: point_hex, PLATFORM: signer.public_pem()}))
    record = _signed(again)
    for role in (integrity.PRODUCER, integrity.PLATFORM):
        assert integrity.verify(role, record, DIGEST, ring).status == "valid"
    assert signer.kid == hashlib.sha256(bytes.fromhex(point_hex)).hexdigest()[:16]


def _der_signature(rs: bytes) -> bytes:
    def integer(raw: bytes) -> bytes:
        raw = raw.lstrip(b"\0")
        raw = b"\0" + raw if raw[0] & 0x80 else raw
        return bytes([2, len(raw)]) + raw

    body = integer(rs[:32]) + integer(rs[32:])
    return bytes([0x30, len(body)]) + body


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_sm2_interoperates_with_openssl(tmp_path) -> None:
    """Keys, Z value (default user ID) and signatures as OpenSSL understands them."""
    key_pem = tmp_path / "openssl.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "SM2", "-out", key_pem], check=True)
    signer = RecordSigner.from_pem(key_pem.read_bytes())
    pub = subprocess.run(
        ["openssl", "pkey", "-in", key_pem, "-pubout"], check=True, capture_output=True, text=True
    ).stdout
    assert signer.public_pem() == pub
    record = signer.sign_producer(Record.first_write(PRODUCER, "01JABC"), DIGEST)
    msg = tmp_path / "msg"
    msg.write_bytes(integrity.message(integrity.PRODUCER, record, DIGEST))
    raw = base64.urlsafe_b64decode(record.reserved_code1.split(".")[3] + "==")
    pub_file, sig_file = tmp_path / "pub.pem", tmp_path / "sig.der"
    pub_file.write_text(pub)
    sig_file.write_bytes(_der_signature(raw))
    check = ["openssl", "dgst", "-sm3", "-verify", pub_file, "-signature", sig_file]
    ours = subprocess.run(
        [*check, "-sigopt", "distid:1234567812345678", msg],
        capture_output=True,
        text=True,
    )
    assert ours.returncode == 0, ours.stdout + ours.stderr
    # and a key we generate is one OpenSSL reads
    ours_key = tmp_path / "ours.pem"
    RecordSigner.load_or_create(ours_key, "sm2")
    text = subprocess.run(
        ["openssl", "pkey", "-in", ours_key, "-pubout"], check=True, capture_output=True, text=True
    ).stdout
    assert text == RecordSigner.from_pem(ours_key.read_bytes()).public_pem()
