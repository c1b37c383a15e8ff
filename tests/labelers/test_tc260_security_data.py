"""TC260-PG-202511A SecurityData in ReservedCode1/2: read in every spelling met in the
wild and signed by independent signers (gmssl directly, the OpenSSL command), written by
our own tc260 format, and opaque vendor values reported unverifiable, never malformed."""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
from gmssl import sm2 as gm_sm2

from detectors.origin import pinned_keyring
from labelers import integrity
from labelers.errors import SigningError
from labelers.integrity import Keyring, RecordSigner, Sm2PrivateKey
from labelers.record import Record

PRODUCER = "001191310104MACE0YX63918020"
PLATFORM = "0011911100007109120X0020001"
DIGEST = hashlib.sha256(b"frames").digest()
SM3_WITH_SM2 = "1.2.156.10197.1.501"


def _gmssl_key() -> tuple[gm_sm2.CryptSM2, bytes]:
    """A key made and used by gmssl alone (not through labelers.integrity)."""
    table = gm_sm2.default_ecc_table
    d = secrets.randbelow(int(table["n"], 16) - 2) + 1
    signer = gm_sm2.CryptSM2(private_key=f"{d:064x}", public_key="")
    point = signer._kg(d, table["g"])  # x||y hex
    signer.public_key = point
    return signer, bytes.fromhex("04" + point)


def _gmssl_sign(signer: gm_sm2.CryptSM2, message: bytes) -> str:
    while True:
        k = f"{secrets.randbelow(int(gm_sm2.default_ecc_table['n'], 16) - 1) + 1:064x}"
        rs = signer.sign_with_sm3(message, k)
        if rs:
            return rs


def _md(record: Record, fields=("Label", "ContentProducer", "ProduceID")) -> bytes:
    # guide appendix A.1, written out here independently of the verifier
    values = record.as_dict()
    return ",".join(f'"{k}":"{values[k]}"' for k in fields).encode()


def _minimax_style(record: Record, signer: gm_sm2.CryptSM2, point: bytes) -> str:
    """MiniMax's spellings: LabelMataData, the key as a bare x padded to 33 bytes."""
    doc = {
        "SecurityData": {
            "Type": "TC260PG",
            "Version": 1,
            "PubSD": [
                {
                    "Type": "PubKey",
                    "KeyID": 1,
                    "AlgID": SM3_WITH_SM2,
                    "KeyValue": "00" + point[1:33].hex(),
                },
                {
                    "Type": "DS",
                    "KeyID": 1,
                    "AlgID": SM3_WITH_SM2,
                    "TBSData": {"Type": "LabelMataData"},
                    "Signature": _gmssl_sign(signer, _md(record)),
                },
            ],
            "Bindings": [{"Type": "Binding", "BType": "0", "Hash": "ab" * 32}],
        }
    }
    return json.dumps(doc, separators=(",", ":"))


def _record(rc1: str = "", produce_id: str = "142569260085903360") -> Record:
    return Record.first_write(PRODUCER, produce_id).with_fields(reserved_code1=rc1)


def test_minimax_style_record_signed_by_gmssl_verifies_with_the_key_inside_it() -> None:
    signer, point = _gmssl_key()
    record = _record()
    record = record.with_fields(reserved_code1=_minimax_style(record, signer, point))
    assert record.problems() == []  # the JSON fits the Annex E charset
    check = integrity.verify(integrity.PRODUCER, record, DIGEST, Keyring())
    assert check.status == "valid", check
    assert check.form == "tc260" and "inside the record only" in check.detail
    # changing one ProduceID digit breaks it
    forged = record.with_fields(produce_id="142569260085903361")
    check = integrity.verify(integrity.PRODUCER, forged, DIGEST, Keyring())
    assert check.status == "invalid-field"


def test_a_pinned_key_names_the_signer_and_honor_spelling_pubsd_is_read() -> None:
    signer, point = _gmssl_key()
    record = _record()
    value = _minimax_style(record, signer, point).replace('"PubSD"', '"PubSd"')
    record = record.with_fields(reserved_code1=value)
    ring = Keyring()
    ring.add(integrity.Sm2PublicKey(point), set(), name="Example Producer")
    check = integrity.verify(integrity.PRODUCER, record, DIGEST, ring)
    assert check.status == "valid" and check.signer == "Example Producer"


def test_the_directory_pins_minimax_key_on_the_curve() -> None:
    ring = pinned_keyring()
    [minimax] = [k for k in ring.sm2_keys() if k.name and "MiniMax" in k.name]
    x = minimax.public_key.point[1:33].hex()
    assert x == "a0b3b0b6a0c9b0c89cab328342af4e8221ec5b40799cbe835ab4251f7b47e4fd"
    assert minimax.public_key.point[-1] % 2 == 0  # even y, as the directory says


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_signature_made_by_openssl_with_der_key_and_der_signature_verifies(tmp_path) -> None:
    key_pem = tmp_path / "k.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "SM2", "-out", key_pem], check=True)
    spki = subprocess.run(
        ["openssl", "pkey", "-in", key_pem, "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    record = _record()
    msg = tmp_path / "msg"
    msg.write_bytes(_md(record))
    der = subprocess.run(
        ["openssl", "dgst", "-sm3", "-sign", key_pem, "-sigopt", "distid:1234567812345678", msg],
        check=True,
        capture_output=True,
    ).stdout
    value = json.dumps(
        {
            "SecurityData": {
                "Type": "TC260PG",
                "Version": 1,
                "PubSD": [
                    {
                        "Type": "DS",
                        "AlgID": SM3_WITH_SM2,
                        "TBSData": {"Type": "Md"},
                        "Signature": der.hex().upper(),
                    },
                    {"Type": "PubKey", "AlgID": SM3_WITH_SM2, "KeyValue": spki.hex().upper()},
                ],
            }
        },
        separators=(",", ":"),
    )
    check = integrity.verify(
        integrity.PRODUCER, record.with_fields(reserved_code1=value), DIGEST, Keyring()
    )
    assert check.status == "valid", check


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_our_tc260_form_is_checked_by_openssl(tmp_path) -> None:
    signer = RecordSigner(Sm2PrivateKey.generate(), "tc260")
    record = signer.sign_producer(Record.first_write(PRODUCER, "01JABC/x-1"), DIGEST)
    data = json.loads(record.reserved_code1)["SecurityData"]
    [key] = [e for e in data["PubSD"] if e["Type"] == "PubKey"]
    [md] = [e for e in data["PubSD"] if e.get("TBSData", {}).get("Type") == "Md"]
    pub = tmp_path / "pub.pem"
    pub.write_text(integrity.Sm2PublicKey(bytes.fromhex(key["KeyValue"])).pem())
    rs = bytes.fromhex(md["Signature"])

    def integer(raw: bytes) -> bytes:
        raw = raw.lstrip(b"\0")
        raw = b"\0" + raw if raw[0] & 0x80 else raw
        return bytes([2, len(raw)]) + raw

    body = integer(rs[:32]) + integer(rs[32:])
    sig = tmp_path / "sig"
    sig.write_bytes(bytes([0x30, len(body)]) + body)
    msg = tmp_path / "msg"
    msg.write_bytes(_md(record))
    command = ["openssl", "dgst", "-sm3", "-verify", pub, "-signature", sig]
    result = subprocess.run(
        [*command, "-sigopt", "distid:1234567812345678", msg],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_our_tc260_form_round_trips_and_tells_content_from_field_changes() -> None:
    signer = RecordSigner(Sm2PrivateKey.generate(), "tc260")
    record = signer.sign_producer(Record.first_write(PRODUCER, "01JABC"), DIGEST)
    record = record.with_fields(content_propagator=PLATFORM, propagate_id="P-1")
    record = signer.sign_platform(record, DIGEST)
    assert record.problems() == []
    assert json.loads(record.reserved_code2)["SecurityData"]["Type"] == "TC260PG"
    ring = Keyring()
    ring.add(signer.public_key, {PRODUCER, PLATFORM})
    for role in (integrity.PRODUCER, integrity.PLATFORM):
        check = integrity.verify(role, record, DIGEST, ring)
        assert check.status == "valid" and "content binding checked" in check.detail
        other = integrity.verify(role, record, b"\1" * 32, ring)
        assert other.status == "invalid-content"
    moved = record.with_fields(propagate_id="P-2")
    assert integrity.verify(integrity.PRODUCER, moved, DIGEST, ring).status == "valid"
    assert integrity.verify(integrity.PLATFORM, moved, DIGEST, ring).status == "invalid-field"
    # a key registered for other codes may not sign for this one
    elsewhere = Keyring()
    elsewhere.add(signer.public_key, {"0011911100007109120X0010999"})
    check = integrity.verify(integrity.PRODUCER, record, DIGEST, elsewhere)
    assert check.status == "invalid-field" and "not registered" in check.detail


def test_tc260_format_needs_an_sm2_key(tmp_path: Path) -> None:
    with pytest.raises(SigningError, match="SM2"):
        RecordSigner.load_or_create(tmp_path / "ed.pem", "ed25519", "tc260")


@pytest.mark.parametrize(
    "value",
    [
        "e3578014edd949debed102781a8c26f7",  # 32 hex digits (Vidu)
        "L-7f3a9c2e1b",  # prefixed token (Wan)
        "q2x0bXBsZV9kaWdlc3Q=",  # base64 digest (Qwen)
        '{"sig":"abc"}',  # JSON that is not SecurityData
    ],
)
def test_opaque_vendor_values_are_unverifiable_never_malformed(value: str) -> None:
    check = integrity.verify(integrity.PRODUCER, _record(value), DIGEST, Keyring())
    assert check.status == "unverifiable", check


def test_security_data_with_rsa_signatures_is_unverifiable() -> None:
    value = json.dumps(
        {
            "SecurityData": {
                "Type": "TC260PG",
                "PubSd": [
                    {"Type": "PubKey", "AlgID": "1.2.840.113549.1.1.1", "KeyValue": "30820122"},
                    {
                        "Type": "DS",
                        "AlgID": "1.2.840.113549.1.1.11",
                        "TBSData": {"Type": "Md"},
                        "Signature": "00" * 256,
                    },
                ],
            }
        },
        separators=(",", ":"),
    )
    check = integrity.verify(integrity.PRODUCER, _record(value), DIGEST, Keyring())
    assert check.status == "unverifiable" and "1.2.840.113549.1.1.11" in check.detail


@pytest.mark.parametrize(
    "security_data",
    [
        "nope",
        {"Type": "TC260PG", "PubSD": "not a list"},
        {
            "Type": "TC260PG",
            "PubSD": [
                {"Type": "DS", "AlgID": SM3_WITH_SM2, "TBSData": {"Type": "Md"}, "Signature": "zz"}
            ],
        },
    ],
)
def test_broken_security_data_is_malformed(security_data) -> None:
    value = json.dumps({"SecurityData": security_data}, separators=(",", ":"))
    check = integrity.verify(integrity.PRODUCER, _record(value), DIGEST, Keyring())
    assert check.status == "malformed", check
