"""The development C2PA signing credentials of a service run without
configured keys: a local CA and an ES256 signer certificate shaped the way
c2pa accepts it, created once under the data directory (safe when several
worker processes start at once) and renewed before they expire. Never for
production: their names say so, and verify does not trust them unless told to.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from labelers import durable
from labelers.errors import SigningError
from labelers.provenance.signer import DOCUMENT_SIGNING_EKU, same_public_key

log = logging.getLogger(__name__)


# =================================================================== credentials
@dataclass(frozen=True)
class SigningFiles:
    """Where the development signing material lives."""

    ca_pem: Path  # the development CA certificate: the trust anchor for verifying
    chain_pem: Path  # signer certificate followed by the CA certificate
    key_pem: Path  # the signer's private key (PKCS#8, unencrypted, mode 0600)
    created: bool  # True when this call generated them


DEV_CA_NAME = "aigc-label development CA (NOT FOR PRODUCTION)"

DEV_SIGNER_NAME = "aigc-label development signer (NOT FOR PRODUCTION)"

DEV_ORGANIZATION = "aigc-label development"

_DEV_CA_DAYS = 10 * 365

_DEV_SIGNER_DAYS = 2 * 365

# renew a little before expiry so a long-running service does not start failing mid-day
_RENEW_BEFORE = dt.timedelta(days=7)


def ensure_dev_credentials(directory: Path | str) -> SigningFiles:
    """Create the development CA and signer under ``directory`` once; reuse them after.

    Files: ``ca.pem``, ``signer-chain.pem`` (leaf + CA) and ``signer-key.pem``
    (0600). They are regenerated when missing, unreadable as PEM, mismatched
    (key not for the leaf) or within a week of expiry. Concurrent callers, in
    threads or processes, serialise on an ``fcntl`` lock, and every file is
    written to a temporary name and renamed into place, so nobody ever reads a
    half-written file.
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SigningError(
            f"cannot create the signing key directory {directory}: {exc.strerror}"
        ) from None
    files = SigningFiles(
        ca_pem=directory / "ca.pem",
        chain_pem=directory / "signer-chain.pem",
        key_pem=directory / "signer-key.pem",
        created=False,
    )
    try:
        lock = _file_lock(directory / ".dev-credentials.lock")
    except SigningError:
        # a read-only key directory is fine as long as it already holds a working set
        if _why_unusable(files) is None:
            return files
        raise
    with lock:
        why = _why_unusable(files)
        if why is None:
            return files
        ca_pem, chain_pem, key_pem = _make_dev_credentials()
        try:
            # key first and CA last: a crash in between leaves a set that
            # _why_unusable rejects (mismatch or missing), never one that half works
            durable.write_atomically(files.key_pem, key_pem, 0o600)
            durable.write_atomically(files.chain_pem, chain_pem, 0o644)
            durable.write_atomically(files.ca_pem, ca_pem, 0o644)
        except OSError as exc:
            raise SigningError(
                f"cannot write development signing credentials to {directory}: {exc.strerror}"
            ) from None
    log.info("created development C2PA signing credentials in %s (%s)", directory, why)
    return SigningFiles(files.ca_pem, files.chain_pem, files.key_pem, created=True)


def _file_lock(path: Path) -> contextlib.AbstractContextManager[None]:
    """An exclusive lock on ``path``; SigningError now if the file cannot be opened."""
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    except OSError as exc:
        raise SigningError(f"cannot create the lock file {path}: {exc.strerror}") from None
    return durable.exclusive_lock(path)


def _why_unusable(files: SigningFiles) -> str | None:
    """None when the three files form a working set; else why they do not."""
    try:
        ca_data = files.ca_pem.read_bytes()
        chain_data = files.chain_pem.read_bytes()
        key_data = files.key_pem.read_bytes()
    except FileNotFoundError as exc:
        return f"{Path(exc.filename).name} was missing"
    except OSError as exc:
        raise SigningError(
            f"cannot read development signing file {exc.filename}: {exc.strerror}"
        ) from None
    try:
        x509.load_pem_x509_certificate(ca_data)
        chain = x509.load_pem_x509_certificates(chain_data)
        key = serialization.load_pem_private_key(key_data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return "the existing files were not valid PEM"
    if not same_public_key(chain[0], key):
        return "the existing key did not match the certificate"
    now = dt.datetime.now(dt.UTC)
    if min(c.not_valid_after_utc for c in chain) - _RENEW_BEFORE < now:
        return "the existing certificate was about to expire"
    return None


def _make_dev_credentials() -> tuple[bytes, bytes, bytes]:
    """(CA cert PEM, leaf + CA chain PEM, leaf key PEM), shaped as c2pa requires."""
    now = dt.datetime.now(dt.UTC)
    backdate = now - dt.timedelta(minutes=5)  # tolerate small clock skew between hosts

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, DEV_CA_NAME),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, DEV_ORGANIZATION),
        ]
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(backdate)
        .not_valid_after(now + dt.timedelta(days=_DEV_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(ca_ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, DEV_SIGNER_NAME),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, DEV_ORGANIZATION),
        ]
    )
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(leaf_name)
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(backdate)
        .not_valid_after(now + dt.timedelta(days=_DEV_SIGNER_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING_EKU]),
            critical=False,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    # The CA key is not kept: the development CA only ever issues this one
    # signer, and renewal mints a fresh pair.
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    chain_pem = leaf_cert.public_bytes(serialization.Encoding.PEM) + ca_pem
    key_pem = leaf_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return ca_pem, chain_pem, key_pem


def _key_usage(
    digital_signature: bool = False, key_cert_sign: bool = False, crl_sign: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )
