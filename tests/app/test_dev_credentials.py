"""The development C2PA credentials (app.dev_credentials): created once, safe
when processes race, renewed when unusable, and shaped as c2pa requires.

Independent readers: cryptography's X.509 parser for the certificate profile,
and c2pa itself (a signature made with them reads back).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import shutil
import stat
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from app.dev_credentials import ensure_dev_credentials
from labelers.errors import SigningError
from labelers.provenance import C2paSigner, certificate_problems

DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")


@pytest.fixture(scope="module")
def creds(tmp_path_factory):
    return ensure_dev_credentials(tmp_path_factory.mktemp("c2pa"))


def test_dev_credentials_are_created_once_then_reused(tmp_path):
    first = ensure_dev_credentials(tmp_path / "keys")
    assert first.created
    contents = [p.read_bytes() for p in (first.ca_pem, first.chain_pem, first.key_pem)]
    assert stat.S_IMODE(first.key_pem.stat().st_mode) == 0o600
    assert contents[1].count(b"BEGIN CERTIFICATE") == 2

    again = ensure_dev_credentials(tmp_path / "keys")
    assert not again.created
    assert [p.read_bytes() for p in (again.ca_pem, again.chain_pem, again.key_pem)] == contents


def test_dev_credentials_are_regenerated_when_the_key_is_gone_or_wrong(tmp_path):
    first = ensure_dev_credentials(tmp_path)
    first.key_pem.unlink()
    assert ensure_dev_credentials(tmp_path).created

    other = ensure_dev_credentials(tmp_path / "other")
    shutil.copy(other.key_pem, tmp_path / "signer-key.pem")  # a key for another leaf
    renewed = ensure_dev_credentials(tmp_path)
    assert renewed.created
    C2paSigner.from_files(renewed.chain_pem, renewed.key_pem)  # a working pair again


def test_dev_credentials_in_a_read_only_directory_are_used_as_they_are(tmp_path, monkeypatch):
    import app.dev_credentials as dev_credentials

    made = ensure_dev_credentials(tmp_path)

    def no_lock(path):  # what a read-only directory does to the lock file
        raise SigningError(f"cannot create the lock file {path}: Read-only file system")

    monkeypatch.setattr(dev_credentials, "_file_lock", no_lock)
    again = ensure_dev_credentials(tmp_path)
    assert not again.created
    assert again.key_pem.read_bytes() == made.key_pem.read_bytes()
    made.key_pem.unlink()  # nothing usable and nowhere to write: say so
    with pytest.raises(SigningError, match="Read-only"):
        ensure_dev_credentials(tmp_path)


def test_dev_leaf_has_the_certificate_profile_c2pa_requires(creds):
    leaf, ca = x509.load_pem_x509_certificates(creds.chain_pem.read_bytes())
    assert x509.load_pem_x509_certificate(creds.ca_pem.read_bytes()) == ca
    ext = leaf.extensions
    assert ext.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = ext.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    ekus = set(ext.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert {ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING} <= ekus
    ext.get_extension_for_class(x509.SubjectKeyIdentifier)
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    assert leaf.public_key().curve.name == "secp256r1"
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert dt.timedelta(days=365) < lifetime < dt.timedelta(days=3 * 365)
    cn = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert "development" in cn.lower()
    org = leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    assert org == "aigc-label development"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert certificate_problems(leaf) == []


def test_dev_leaf_passes_c2pa_certificate_checks(creds):
    # construction signs a probe with c2pa, which rejects unfit certificates
    signer = C2paSigner.from_files(creds.chain_pem, creds.key_pem)
    assert signer.alg == "es256"


def _race_for_credentials(directory: str, start_at: float) -> tuple[bool, bytes, bytes]:
    time.sleep(max(0.0, start_at - time.time()))
    files = ensure_dev_credentials(Path(directory))
    return files.created, files.chain_pem.read_bytes(), files.key_pem.read_bytes()


def test_dev_credentials_are_safe_when_processes_race(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        start_at = time.time() + 2.0  # after the workers have imported
        results = pool.starmap(_race_for_credentials, [(str(tmp_path), start_at)] * 4)
    assert sum(created for created, _, _ in results) == 1
    assert len({(chain, key) for _, chain, key in results}) == 1
    C2paSigner.from_files(tmp_path / "signer-chain.pem", tmp_path / "signer-key.pem")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# ================================================================== signing
