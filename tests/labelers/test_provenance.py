"""C2PA signing and reading: credentials, manifests, tamper evidence, errors, threads.

Signed files are checked with c2pa's own Reader (through read_manifest) and,
where it can see JUMBF, independently with exiftool.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import multiprocessing
import os
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
from fpdf import FPDF
from PIL import Image

from app.dev_credentials import ensure_dev_credentials
from labelers.errors import (
    CorruptInput,
    InvalidOption,
    InvalidRecord,
    LimitExceeded,
    SigningError,
    UnsupportedMedia,
)
from labelers.limits import Limits
from labelers.provenance import (
    GB_ASSERTION_LABEL,
    TRAINED_ALGORITHMIC_MEDIA,
    C2paSigner,
    read_manifest,
    supported_media_types,
)
from labelers.record import Record
from tests.support import raises_limit

DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")
AGENT = "example-diffusion 3.1"


# ----------------------------------------------------------------- fixtures
def photo(width: int = 320, height: int = 240, seed: int = 1) -> np.ndarray:
    """Photographic-like RGB: smooth gradients, a soft blob and fine texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 40 + 180 * x / width
    g = 60 + 150 * y / height
    b = 120 + 90 * np.exp(-(((x - width * 0.6) ** 2 + (y - height * 0.4) ** 2) / (width * 12)))
    img = np.stack([r, g, b], axis=-1) + rng.normal(0, 6, (height, width, 3))
    return img.clip(0, 255).astype(np.uint8)


def encode(fmt: str, pixels: np.ndarray | None = None) -> bytes:
    image = Image.fromarray(photo() if pixels is None else pixels)
    buf = io.BytesIO()
    if fmt == "GIF":
        image = image.quantize(colors=128)
    image.save(buf, fmt, **({"quality": 90} if fmt in ("JPEG", "WEBP") else {}))
    return buf.getvalue()


def make_pdf() -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=14)
    pdf.cell(text="A report written by a model.")
    return bytes(pdf.output())


def payload_offset(fmt: str, data: bytes) -> int:
    """An offset inside the pixel/content payload of an unsigned file."""
    if fmt == "JPEG":
        return data.index(b"\xff\xda") + 64
    if fmt == "PNG":
        return data.index(b"IDAT") + 40
    if fmt == "WEBP":
        return data.index(b"VP8") + 40
    if fmt == "TIFF":
        return Image.open(io.BytesIO(data)).tag_v2[273][0] + 200  # first strip
    if fmt == "GIF":
        return len(data) - 40  # LZW image data sits just before the trailer
    if fmt == "PDF":
        return data.index(b"stream") + 12
    raise AssertionError(fmt)


def flip_payload_byte(fmt: str, source: bytes, signed: bytes) -> bytes:
    """Flip one bit of the content the signature covers, found via the unsigned source."""
    start = payload_offset(fmt, source)
    window = source[start : start + 24]
    at = signed.index(window)
    assert signed.count(window) == 1
    tampered = bytearray(signed)
    tampered[at + 8] ^= 0x01
    return bytes(tampered)


FORMATS = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "TIFF": "image/tiff",
    "GIF": "image/gif",
    "PDF": "application/pdf",
}


def source_for(fmt: str) -> bytes:
    return make_pdf() if fmt == "PDF" else encode(fmt)


@pytest.fixture(scope="module")
def creds(tmp_path_factory):
    return ensure_dev_credentials(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def anchors(creds) -> str:
    return creds.ca_pem.read_text()


@pytest.fixture(scope="module")
def signer(creds) -> C2paSigner:
    return C2paSigner.from_files(creds.chain_pem, creds.key_pem)


@pytest.fixture(scope="module")
def record() -> Record:
    return Record.first_write("00ABCDEFGHIJKLMNOPQRST1ABCD", "01JC2PAPR0VENANCETEST00001")


@pytest.fixture(scope="module")
def signed_jpeg(signer, record) -> tuple[bytes, bytes]:
    source = encode("JPEG")
    return source, signer.sign(source, "image/jpeg", record, AGENT, title="portrait.jpg")


# ---------------------------------------------------------- test credentials
def make_chain(
    tmp: Path,
    *,
    leaf_key=None,
    ekus=(ExtendedKeyUsageOID.EMAIL_PROTECTION,),
    leaf_is_ca: bool = False,
) -> tuple[Path, Path, str]:
    """A CA + leaf like ensure_dev_credentials makes, with knobs to break it."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = leaf_key or ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test signer")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=10))
        .add_extension(x509.BasicConstraints(ca=leaf_is_ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, leaf_is_ca, False, False, False),
            critical=True,
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False)
    )
    if ekus:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(ekus)), critical=False)
    leaf = builder.sign(ca_key, hashes.SHA256())
    pem = serialization.Encoding.PEM
    chain = tmp / "chain.pem"
    key = tmp / "key.pem"
    chain.write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    key.write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return chain, key, ca.public_bytes(pem).decode()


# ============================================================== credentials
def test_supported_media_types_are_mime_types_and_cover_our_formats():
    types = supported_media_types()
    assert set(FORMATS.values()) <= types
    assert all("/" in t for t in types)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_signed_file_reads_back_trusted_with_the_gb_record(fmt, signer, record, anchors):
    source = source_for(fmt)
    signed = signer.sign(source, FORMATS[fmt], record, AGENT, title=f"out.{fmt.lower()}")

    report = read_manifest(signed, FORMATS[fmt], anchors)
    assert report is not None
    assert report.state == "Trusted"
    assert report.signer_trusted and report.manifest_intact
    assert not report.content_altered
    assert report.actions == ["c2pa.created"]
    assert report.digital_source_types == [TRAINED_ALGORITHMIC_MEDIA]
    assert report.software_agents == [AGENT]
    assert report.gb_record == record.as_dict()
    assert list(report.gb_record) == list(record.as_dict())  # Annex E key order
    assert report.claim_generator.startswith("aigc-label ")
    assert report.title == f"out.{fmt.lower()}"
    assert "development" in report.signer
    assert report.validation_errors == []
    json.dumps(report.to_dict())  # JSON-ready for the verify endpoint

    if fmt != "PDF":  # signing embeds metadata only: the pixels stay the same
        before = np.asarray(Image.open(io.BytesIO(source)).convert("RGB"))
        after = np.asarray(Image.open(io.BytesIO(signed)).convert("RGB"))
        assert np.array_equal(before, after)


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_exiftool_sees_the_manifest_assertions(fmt, signer, record):
    signed = signer.sign(encode(fmt), FORMATS[fmt], record, AGENT)
    out = subprocess.run(
        ["exiftool", "-j", "-G1", "-a", "-"], input=signed, capture_output=True, check=True
    ).stdout
    tags = json.loads(out)[0]
    assert tags["JUMBF:JUMDLabel"] == "c2pa"  # the manifest store
    assert f"self#jumbf=c2pa.assertions/{GB_ASSERTION_LABEL}" in tags["CBOR:Gathered_AssertionsUrl"]
    assert tags["CBOR:ProduceID"] == record.produce_id
    assert tags["CBOR:ActionsAction"] == "c2pa.created"
    assert tags["CBOR:ActionsDigitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA


def test_reading_without_anchors_says_untrusted_but_not_altered(signed_jpeg):
    report = read_manifest(signed_jpeg[1], "image/jpeg")
    assert report.state == "Valid"
    assert not report.signer_trusted
    assert not report.content_altered
    assert report.manifest_intact
    assert [e["code"] for e in report.validation_errors] == ["signingCredential.untrusted"]


def test_another_ca_as_anchor_leaves_the_signer_untrusted(signed_jpeg, tmp_path):
    other = ensure_dev_credentials(tmp_path)
    report = read_manifest(signed_jpeg[1], "image/jpeg", other.ca_pem.read_text())
    assert not report.signer_trusted
    assert not report.content_altered


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_a_flipped_content_byte_after_signing_reads_as_altered(fmt, signer, record, anchors):
    source = source_for(fmt)
    signed = signer.sign(source, FORMATS[fmt], record, AGENT)
    report = read_manifest(flip_payload_byte(fmt, source, signed), FORMATS[fmt], anchors)
    assert report.state == "Invalid"
    assert report.content_altered
    assert report.signer_trusted  # the signature itself still checks out
    assert report.manifest_intact
    codes = {e["code"] for e in report.validation_errors}
    assert codes & {"assertion.dataHash.mismatch", "assertion.collectionHash.mismatch"}
    assert report.gb_record == record.as_dict()  # the claim is still readable


def test_resigning_a_signed_file_replaces_its_manifest(signed_jpeg, signer, anchors):
    again = signer.sign(signed_jpeg[1], "image/jpeg", Record.first_write("P2", "NEW"), AGENT)
    report = read_manifest(again, "image/jpeg", anchors)
    assert report.state == "Trusted"
    assert report.gb_record["ProduceID"] == "NEW"
    assert report.actions == ["c2pa.created"]  # not a second, stacked claim


def test_unsigned_file_has_no_manifest():
    assert read_manifest(encode("PNG"), "image/png") is None


def test_a_damaged_manifest_is_an_invalid_report_not_an_exception(signed_jpeg, anchors):
    signed = bytearray(signed_jpeg[1])
    at = signed.index(GB_ASSERTION_LABEL.encode())
    signed[at + 40 : at + 48] = b"\xff" * 8  # garble the assertion's CBOR
    report = read_manifest(bytes(signed), "image/jpeg", anchors)
    assert report is not None
    assert report.state == "Invalid"
    assert not report.manifest_intact
    assert not report.signer_trusted
    assert report.validation_errors


def test_ed25519_key_is_detected_and_signs(tmp_path, record):
    chain, key, ca = make_chain(tmp_path, leaf_key=ed25519.Ed25519PrivateKey.generate())
    signer = C2paSigner.from_files(chain, key)
    assert signer.alg == "ed25519"
    report = read_manifest(signer.sign(encode("PNG"), "image/png", record, AGENT), "image/png", ca)
    assert report.state == "Trusted"


def test_concurrent_signing_from_many_threads(signer, anchors):
    source = encode("JPEG", photo(160, 120, seed=7))
    results: dict[str, bytes] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work(thread: int) -> None:
        try:
            barrier.wait()
            for i in range(10):
                rec = Record.first_write("P1", f"T{thread}N{i}")
                results[rec.produce_id] = signer.sign(source, "image/jpeg", rec, AGENT)
        except BaseException as exc:  # surfaced below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 80
    for produce_id, signed in results.items():
        report = read_manifest(signed, "image/jpeg", anchors)
        assert report.state == "Trusted" and not report.content_altered
        assert report.gb_record["ProduceID"] == produce_id


_FORK_SIGNER: list[C2paSigner] = []


def _sign_with_inherited_signer() -> bytes:
    return _FORK_SIGNER[0].sign(encode("PNG"), "image/png", Record.first_write("P1", "F1"), AGENT)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_signer_made_before_fork_works_in_a_forked_worker(signer, record, anchors):
    # pre-fork servers build the signer in the parent; native handles do not survive fork
    signer.sign(encode("PNG"), "image/png", record, AGENT)  # parent's native objects exist
    _FORK_SIGNER[:] = [signer]
    try:
        with multiprocessing.get_context("fork").Pool(1) as pool:
            signed = pool.apply(_sign_with_inherited_signer)
    finally:
        _FORK_SIGNER.clear()
    report = read_manifest(signed, "image/png", anchors)
    assert report.state == "Trusted"
    assert report.gb_record["ProduceID"] == "F1"


# =================================================================== errors
def test_unreadable_key_or_chain_is_a_signing_error(tmp_path, creds):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a pem file")
    with pytest.raises(SigningError, match="private key is not a PEM"):
        C2paSigner.from_files(creds.chain_pem, junk)
    with pytest.raises(SigningError, match="chain is not PEM"):
        C2paSigner.from_files(junk, creds.key_pem)
    with pytest.raises(SigningError, match="cannot read the C2PA private key"):
        C2paSigner.from_files(creds.chain_pem, tmp_path / "missing.pem")


def test_key_of_another_certificate_is_a_signing_error(tmp_path, creds):
    other = ensure_dev_credentials(tmp_path)
    with pytest.raises(SigningError, match="does not belong to the first certificate"):
        C2paSigner.from_files(creds.chain_pem, other.key_pem)


def test_encrypted_key_is_a_signing_error(tmp_path, creds):
    key = serialization.load_pem_private_key(creds.key_pem.read_bytes(), None)
    locked = tmp_path / "locked.pem"
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(SigningError, match="encrypted"):
        C2paSigner.from_files(creds.chain_pem, locked)


def test_algorithm_that_does_not_fit_the_key_is_a_signing_error(creds):
    with pytest.raises(SigningError, match="does not fit the private key"):
        C2paSigner.from_files(creds.chain_pem, creds.key_pem, alg="ed25519")


def test_certificate_c2pa_rejects_is_a_signing_error_naming_the_rule(tmp_path):
    chain, key, _ = make_chain(tmp_path, ekus=(ExtendedKeyUsageOID.SERVER_AUTH,))
    with pytest.raises(SigningError) as err:
        C2paSigner.from_files(chain, key)
    assert "certificate" in err.value.detail
    assert "extended key usage" in err.value.detail


def test_self_signed_ca_as_signer_is_a_signing_error(creds):
    with pytest.raises(SigningError, match="certificate"):
        C2paSigner.from_files(creds.ca_pem, creds.key_pem)


def test_garbage_bytes_claimed_as_jpeg_are_corrupt_input(signer, record):
    garbage = os.urandom(4096)
    with pytest.raises(CorruptInput, match="image/jpeg"):
        signer.sign(garbage, "image/jpeg", record, AGENT)
    with pytest.raises(CorruptInput, match="image/jpeg"):
        read_manifest(garbage, "image/jpeg")


def test_png_bytes_signed_as_jpeg_are_corrupt_input(signer, record):
    with pytest.raises(CorruptInput, match="could not parse"):
        signer.sign(encode("PNG"), "image/jpeg", record, AGENT)


def test_media_c2pa_cannot_carry_is_unsupported(signer, record):
    with pytest.raises(UnsupportedMedia, match="text/plain"):
        signer.sign(b"hello", "text/plain", record, AGENT)
    with pytest.raises(UnsupportedMedia, match="text/plain"):
        read_manifest(b"hello", "text/plain")


def test_empty_and_oversized_input_are_refused_before_c2pa_runs(signer, record):
    with pytest.raises(CorruptInput, match="empty"):
        signer.sign(b"", "image/png", record, AGENT)
    small = Limits(max_bytes=100)
    with raises_limit("max_bytes"):
        signer.sign(encode("PNG"), "image/png", record, AGENT, limits=small)
    with pytest.raises(LimitExceeded):
        read_manifest(encode("PNG"), "image/png", limits=small)


def test_bad_record_or_agent_is_refused(signer):
    bad = Record(label="7", content_producer="P 1", produce_id="")
    with pytest.raises(InvalidRecord):
        signer.sign(encode("PNG"), "image/png", bad, AGENT)
    with pytest.raises(InvalidOption, match="software_agent"):
        signer.sign(encode("PNG"), "image/png", Record.first_write("P", "I"), "  ")


def test_trust_anchors_that_are_not_pem_are_a_signing_error(signed_jpeg):
    with pytest.raises(SigningError, match="trust anchors"):
        read_manifest(signed_jpeg[1], "image/jpeg", "not a certificate")
