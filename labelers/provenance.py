"""C2PA Content Credentials: signing material, signing, and reading (c2pa-python).

This module owns everything C2PA in the labeller:

- :func:`ensure_dev_credentials` creates (once) a local development CA and an
  ES256 signer certificate shaped the way c2pa accepts it, for runs without
  configured production keys. It is safe when several worker processes start
  at once.
- :class:`C2paSigner` signs a file in memory with a manifest that says "created
  by a trained algorithm" (IPTC digital source type ``trainedAlgorithmicMedia``)
  and carries the GB 45438 Annex E record as the custom assertion
  ``cn.tc260.aigc``. No thumbnail, no timestamp authority, no network.
- :meth:`C2paSigner.sign_update` re-signs a file a distribution platform has
  rewritten (its propagation fields written into the record, perhaps a
  visible label drawn): a new manifest with the platform's action whose
  ``parentOf`` ingredient is the file as received, so the producer's manifest
  stays in the manifest store instead of being discarded.
- :func:`read_manifest` verifies a file's manifest and says, separately,
  whether the *content* changed after signing (hard-binding hash mismatch),
  whether the *signer* is trusted, and whether the manifest itself is intact.
  A real AI image whose credential is merely untrusted or expired is not an
  altered image, and the report keeps those apart.
  It also walks the whole manifest store (ingredients of any relationship,
  by their ``active_manifest`` links, with depth and count limits) and sums
  each manifest up with its validation in one word (:func:`validation_word`):
  real exports often state their AI origin only below the active manifest.

Sign last. The manifest's hard binding hashes every byte of the file outside
the manifest itself, so any rewrite after signing (a metadata splice, a
re-encode, even a one-byte change in a pixel) breaks it and readers report
``assertion.dataHash.mismatch`` (or the bmff/boxes/collection equivalent).
The pipeline therefore signs after the visible label, the watermark and the
metadata record have been written. A later writer (a platform adding its
ContentPropagator/PropagateID) breaks the producer's binding too, which is why
it signs again with :meth:`C2paSigner.sign_update`: the producer's claim is
then checked against the bytes it signed (the parent), and the new claim
against the bytes as they are now.

Errors: bad or unusable keys and certificates raise
:class:`~labelers.errors.SigningError`; bytes c2pa cannot parse raise
:class:`~labelers.errors.CorruptInput`; media c2pa cannot carry raise
:class:`~labelers.errors.UnsupportedMedia`. A file whose manifest store is
damaged is not an error when reading: it yields a report with state
``Invalid`` and the code ``manifest.unreadable`` (ours, not a spec code).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import io
import json
import logging
import os
import re
import struct
import threading
import zlib
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import c2pa
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from labelers import durable
from labelers.errors import (
    CorruptInput,
    InvalidOption,
    SigningError,
    UnsupportedMedia,
)
from labelers.formats import png as png_format
from labelers.formats import sniff
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.record import KEYS, Record

log = logging.getLogger(__name__)

#: label of the custom assertion that carries the Annex E record
GB_ASSERTION_LABEL = "cn.tc260.aigc"
#: IPTC digital source type for content made by a trained model (GB 45438 "AI-generated")
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
CLAIM_GENERATOR = "aigc-label"

try:
    _VERSION = metadata.version("aigc-label")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    _VERSION = "0+unknown"

DOCUMENT_SIGNING_EKU = ObjectIdentifier("1.3.6.1.5.5.7.3.36")
# EKUs c2pa accepts on a signer certificate (found by negative tests: anyExtendedKeyUsage,
# serverAuth only or no EKU fail at sign time with "the certificate is invalid")
_C2PA_EKUS = {
    ExtendedKeyUsageOID.EMAIL_PROTECTION,
    DOCUMENT_SIGNING_EKU,
    ExtendedKeyUsageOID.TIME_STAMPING,
    ExtendedKeyUsageOID.OCSP_SIGNING,
}

# failure codes meaning "the bytes the manifest covers changed" (hard binding)
_CONTENT_HASH_MISMATCH = {
    "assertion.dataHash.mismatch",
    "assertion.bmffHash.mismatch",
    "assertion.boxesHash.mismatch",
    "assertion.collectionHash.mismatch",
}
UNREADABLE_CODE = "manifest.unreadable"

# actions a manifest opens with (c2pa requires one of them first); sign_update
# writes them itself, so they are not accepted as the platform's action
_FIRST_ACTIONS = {"c2pa.created", "c2pa.opened"}
# the ingredient id that links the c2pa.opened action to the parent ingredient
_PARENT_ID = "parent"


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
    if not _same_public_key(chain[0], key):
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


# ======================================================================= signing
_EC_ALGS = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}
_RSA_ALGS = ("ps256", "ps384", "ps512")


class C2paSigner:
    """Signs files with a C2PA manifest; safe to share between threads.

    c2pa-python's native objects have crashed when shared across threads, so
    each thread lazily builds its own ``c2pa.Signer`` and ``c2pa.Context``
    from the PEM bytes held here (about 0.4 ms once per thread). Measured on
    2 cores with a 1 MP JPEG, this and one shared signer behind a lock were
    equally fast (~1.5 ms per signature either way; threads did not add
    throughput, probably because c2pa reads and writes the streams through
    Python callbacks that need the GIL), so the variant that shares nothing
    won. A forked
    worker process rebuilds them too: native handles do not survive fork.
    Construction checks the material and signs a tiny probe image, so a key
    or certificate c2pa would reject fails here, not on the first request.
    """

    def __init__(self, chain_pem: bytes, key_pem: bytes, alg: str | None = None) -> None:
        leaf, self.alg = _check_signing_material(chain_pem, key_pem, alg)
        self._chain_pem = chain_pem
        self._key_pem = key_pem
        self.subject = leaf.subject.rfc4514_string()
        self.not_after = leaf.not_valid_after_utc
        self._local = threading.local()
        self._probe(leaf)

    @classmethod
    def from_files(
        cls, chain_pem_path: Path | str, key_pem_path: Path | str, alg: str | None = None
    ) -> C2paSigner:
        """Load a PEM chain (leaf first) and its PEM private key.

        ``alg`` (es256, es384, es512, ps256, ps384, ps512, ed25519) defaults
        to the one the key implies: P-256 -> es256, Ed25519 -> ed25519, ...
        """
        return cls(
            _read_material(chain_pem_path, "certificate chain"),
            _read_material(key_pem_path, "private key"),
            alg,
        )

    # ------------------------------------------------------------------ signing
    def sign(
        self,
        data: bytes,
        media_type: str,
        record: Record,
        software_agent: str,
        title: str | None = None,
        *,
        limits: Limits = DEFAULT_LIMITS,
    ) -> bytes:
        """``data`` with an embedded, signed C2PA manifest; the input is not modified.

        The manifest holds one ``c2pa.created`` action (digital source type
        trainedAlgorithmicMedia, software agent ``software_agent``) and the
        ``cn.tc260.aigc`` assertion with ``record.as_dict()``. Call this last:
        any later byte change breaks the signature's hard binding. Signing a
        file that already carries a manifest replaces it (one manifest, so
        relabelling stays idempotent).
        """
        _check_signing_input(data, media_type, limits)
        if not software_agent or not software_agent.strip():
            raise InvalidOption("software_agent must name the generating model or service")
        record.validate()
        manifest = build_manifest(record, software_agent, title)
        return self._sign_bytes(data, media_type, manifest)

    def sign_update(
        self,
        data: bytes,
        media_type: str,
        record: Record,
        software_agent: str,
        *,
        parent: bytes | None = None,
        action: str = "c2pa.published",
        limits: Limits = DEFAULT_LIMITS,
    ) -> bytes:
        """Re-sign ``data`` after a platform rewrote it, keeping the producer's provenance.

        ``data`` is the file as the platform now distributes it (propagation
        fields written, perhaps a visible label drawn); ``parent`` is the file
        as the platform received it, before the rewrite. When ``parent``
        carries a C2PA manifest, the new manifest takes it as its ``parentOf``
        ingredient: the actions are ``c2pa.opened`` (that ingredient) then
        ``action``, and the parent's manifest store (the producer's manifest
        and any earlier ones) is copied into ``data``'s, so a reader sees the
        whole chain. c2pa validates the parent while adding it and records
        the result in the ingredient, so a parent that was already altered
        (or whose signer c2pa did not trust then) is kept, with that finding,
        not hidden; :func:`read_manifest` reports it per ingredient.

        Without a parent manifest (``parent`` None or unsigned) this signs
        like :meth:`sign`, except that the actions are ``c2pa.created``
        (trainedAlgorithmicMedia, no agent: the platform did not generate it)
        then ``action``. Either way the ``cn.tc260.aigc`` assertion holds
        ``record`` (the updated record) and ``software_agent`` names the
        platform on ``action``. Use ``action="c2pa.edited"`` when pixels or
        content changed (a visible label was added), ``c2pa.published`` when
        only metadata did. Any manifest ``data`` itself still carries (the
        producer's, now broken) is replaced, as in :meth:`sign`.

        Errors: as :meth:`sign`; an unusable ``action`` is InvalidOption; a
        parent whose manifest c2pa cannot parse is CorruptInput (sign again
        with ``parent=None`` to drop it deliberately).
        """
        _check_signing_input(data, media_type, limits)
        if parent is not None and len(parent) > limits.max_bytes:
            raise limits.exceeded(
                "max_bytes",
                len(parent),
                f"the parent file is {len(parent)} bytes, over the limit of "
                f"{limits.max_bytes} bytes",
            )
        if not software_agent or not software_agent.strip():
            raise InvalidOption("software_agent must name the platform or service")
        _check_update_action(action)
        record.validate()
        # a cheap byte test: reading the parent's manifest is c2pa's job when it
        # is added, and a parent without one is not added at all
        if parent is None or not _has_manifest_marker(parent):
            manifest = build_update_manifest(record, software_agent, action, has_parent=False)
            return self._sign_bytes(data, media_type, manifest)
        manifest = build_update_manifest(record, software_agent, action, has_parent=True)
        try:
            parent_type = sniff(parent)
        except UnsupportedMedia:
            parent_type = media_type  # c2pa may still know it; it says so if not
        if parent_type not in _readable_media_types():
            parent_type = media_type
        return self._sign_bytes(data, media_type, manifest, parent=(parent, parent_type))

    def _sign_bytes(
        self,
        data: bytes,
        media_type: str,
        manifest: dict[str, Any],
        *,
        parent: tuple[bytes, str] | None = None,
    ) -> bytes:
        signer, context = self._native()
        out = io.BytesIO()
        try:
            # a Builder signs once, so each call gets a fresh one
            builder = c2pa.Builder(manifest, context=context)
        except c2pa.C2paError as exc:
            raise _signing_failure(exc, media_type) from None
        if parent is not None:
            parent_data, parent_type = parent
            try:
                builder.add_ingredient(
                    {"relationship": "parentOf", "label": _PARENT_ID},
                    parent_type,
                    io.BytesIO(parent_data),
                )
            except c2pa.C2paError as exc:
                raise CorruptInput(
                    f"the parent {parent_type} file's C2PA manifest cannot be kept as an "
                    f"ingredient: {_c2pa_message(exc)}"
                ) from None
        try:
            builder.sign(signer, media_type, io.BytesIO(data), out)
        except c2pa.C2paError as exc:
            message = _c2pa_message(exc)
            if isinstance(exc, c2pa.C2paError.Verify) and "action" in message.lower():
                # c2pa's own action rules (e.g. parameters an action requires)
                raise InvalidOption(f"c2pa refused the manifest's actions: {message}") from None
            raise _signing_failure(exc, media_type) from None
        return out.getvalue()

    def _native(self) -> tuple[c2pa.Signer, c2pa.Context]:
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            try:
                local.signer = c2pa.Signer.from_info(
                    c2pa.C2paSignerInfo(self.alg.encode(), self._chain_pem, self._key_pem, None)
                )
            except c2pa.C2paError as exc:
                raise SigningError(
                    f"c2pa rejected the signing key or certificate: {_c2pa_message(exc)}"
                ) from None
            # No thumbnail (~50 ms, megabytes); no re-verification of every
            # signed file (half the signing time): the probe at construction
            # and the tests check what we write, verify checks what we read.
            local.context = c2pa.Context(
                c2pa.Settings.from_dict(
                    {
                        "builder": {"thumbnail": {"enabled": False}},
                        "verify": {"verify_after_sign": False},
                    }
                )
            )
            local.pid = os.getpid()
        return local.signer, local.context

    def _probe(self, leaf: x509.Certificate) -> None:
        """Sign a 1x1 PNG so c2pa's certificate checks run now, with a clear message."""
        manifest = build_manifest(
            Record.first_write("probe", "probe"), "aigc-label credential check", None
        )
        try:
            self._sign_bytes(_PROBE_PNG, "image/png", manifest)
        except SigningError as exc:
            problems = certificate_problems(leaf)
            hint = f" (the certificate {'; '.join(problems)})" if problems else ""
            raise SigningError(f"{exc.detail}{hint}") from None
        except (CorruptInput, UnsupportedMedia) as exc:  # cannot be the probe's fault
            raise SigningError(f"c2pa could not sign with this material: {exc.detail}") from None


def build_manifest(record: Record, software_agent: str, title: str | None) -> dict[str, Any]:
    """The manifest definition :meth:`C2paSigner.sign` embeds."""
    manifest: dict[str, Any] = {
        "claim_generator_info": [{"name": CLAIM_GENERATOR, "version": _VERSION}],
        "assertions": [
            {
                "label": "c2pa.actions.v2",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                            # actions v2 describes the agent as generator info, not a string
                            "softwareAgent": {"name": software_agent},
                        }
                    ]
                },
            },
            {"label": GB_ASSERTION_LABEL, "data": record.as_dict()},
        ],
    }
    if title:
        manifest["title"] = title
    return manifest


def build_update_manifest(
    record: Record, software_agent: str, action: str, *, has_parent: bool
) -> dict[str, Any]:
    """The manifest definition :meth:`C2paSigner.sign_update` embeds.

    c2pa requires the first action to be ``c2pa.created`` or ``c2pa.opened``
    (it refuses to sign otherwise), so the platform's action comes second.
    """
    first: dict[str, Any]
    if has_parent:
        first = {"action": "c2pa.opened", "parameters": {"ingredientIds": [_PARENT_ID]}}
    else:
        first = {"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA}
    update = {"action": action, "softwareAgent": {"name": software_agent}}
    return {
        "claim_generator_info": [{"name": CLAIM_GENERATOR, "version": _VERSION}],
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": [first, update]}},
            {"label": GB_ASSERTION_LABEL, "data": record.as_dict()},
        ],
    }


def _check_signing_input(data: bytes, media_type: str, limits: Limits) -> None:
    if media_type not in supported_media_types():
        raise UnsupportedMedia(f"C2PA manifests cannot be embedded in {media_type} files")
    if not data:
        raise CorruptInput("the file is empty")
    limits.check("max_bytes", len(data), "the file")


_ACTION_NAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+")


def _check_update_action(action: str) -> None:
    if not isinstance(action, str) or not _ACTION_NAME.fullmatch(action) or len(action) > 100:
        raise InvalidOption(
            f"action {action!r} is not a C2PA action name (such as c2pa.published, "
            "c2pa.edited or a reverse-domain name like com.example.reviewed)"
        )
    if action in _FIRST_ACTIONS:
        raise InvalidOption(
            f"action {action!r} cannot describe an update; use c2pa.published when only "
            "metadata changed or c2pa.edited when the content changed"
        )


def _read_material(path: Path | str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise SigningError(f"cannot read the C2PA {what} {path}: {exc.strerror}") from None


def _check_signing_material(
    chain_pem: bytes, key_pem: bytes, alg: str | None
) -> tuple[x509.Certificate, str]:
    """Parse chain and key; return (leaf, algorithm) or raise SigningError naming the fault."""
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
    except ValueError:
        raise SigningError(
            "the C2PA certificate chain is not PEM X.509 certificates "
            "(expected -----BEGIN CERTIFICATE----- blocks, signer first)"
        ) from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise SigningError(
            "the C2PA private key is encrypted; provide an unencrypted PEM key "
            "or use a KMS/HSM signer"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise SigningError("the C2PA private key is not a PEM private key") from None
    leaf = chain[0]

    implied: str
    allowed: tuple[str, ...]
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in _EC_ALGS:
        implied = _EC_ALGS[key.curve.name]
        allowed = (implied,)
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        implied, allowed = "ed25519", ("ed25519",)
    elif isinstance(key, rsa.RSAPrivateKey):
        implied, allowed = "ps256", _RSA_ALGS
    else:
        raise SigningError(
            f"C2PA cannot sign with a {type(key).__name__.lstrip('_')} key; use an "
            "EC P-256/P-384/P-521, Ed25519 or RSA key"
        )
    chosen = implied if alg is None else alg.strip().lower()
    if chosen not in allowed:
        raise SigningError(
            f"signing algorithm {alg!r} does not fit the private key "
            f"(this key signs with {' or '.join(allowed)})"
        )
    if not _same_public_key(leaf, key):
        raise SigningError(
            "the C2PA private key does not belong to the first certificate in the chain "
            f"({leaf.subject.rfc4514_string()}); the chain must start with the signer"
        )
    now = dt.datetime.now(dt.UTC)
    if now < leaf.not_valid_before_utc:
        raise SigningError(
            f"the C2PA signing certificate is not valid before {leaf.not_valid_before_utc:%Y-%m-%d}"
        )
    if now > leaf.not_valid_after_utc:
        raise SigningError(
            f"the C2PA signing certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d}"
        )
    return leaf, chosen


def _same_public_key(cert: x509.Certificate, key: Any) -> bool:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    try:
        return bool(
            cert.public_key().public_bytes(der, spki) == key.public_key().public_bytes(der, spki)
        )
    except (AttributeError, ValueError, UnsupportedAlgorithm):
        return False


def certificate_problems(leaf: x509.Certificate) -> list[str]:
    """Why c2pa would reject ``leaf`` as a signer, as phrases; empty if none found.

    c2pa itself only says "the certificate is invalid"; this names the rule.
    """
    out: list[str] = []
    if leaf.version != x509.Version.v3:
        out.append("is not X.509 v3")
    ext = leaf.extensions
    with contextlib.suppress(x509.ExtensionNotFound):
        if ext.get_extension_for_class(x509.BasicConstraints).value.ca:
            out.append("is a CA certificate (a signer must not be)")
    try:
        usage = ext.get_extension_for_class(x509.KeyUsage).value
        if not usage.digital_signature:
            out.append("lacks the digitalSignature key usage")
        if usage.key_cert_sign:
            out.append("has the keyCertSign key usage (a signer must not)")
    except x509.ExtensionNotFound:
        out.append("has no KeyUsage extension (needs digitalSignature)")
    try:
        ekus = set(ext.get_extension_for_class(x509.ExtendedKeyUsage).value)
        if not ekus & _C2PA_EKUS:
            out.append(
                "has no C2PA extended key usage (emailProtection, documentSigning "
                "1.3.6.1.5.5.7.3.36, timeStamping or OCSPSigning)"
            )
    except x509.ExtensionNotFound:
        out.append("has no ExtendedKeyUsage extension (needs e.g. documentSigning)")
    try:
        ext.get_extension_for_class(x509.AuthorityKeyIdentifier)
    except x509.ExtensionNotFound:
        out.append("has no Authority Key Identifier")
    if leaf.issuer == leaf.subject:
        out.append("is self-signed (c2pa needs a CA-issued signer)")
    return out


def _c2pa_message(exc: c2pa.C2paError) -> str:
    text = str(exc).strip() or type(exc).__name__.lstrip("_")
    kind, sep, rest = text.partition(": ")
    # drop c2pa's "Other: " style kind prefix; keep the sentence
    return rest if sep and kind.isidentifier() and rest else text


def _signing_failure(exc: c2pa.C2paError, media_type: str) -> Exception:
    message = _c2pa_message(exc)
    lowered = message.lower()
    if isinstance(exc, c2pa.C2paError.Signature) or "certificate" in lowered:
        return SigningError(f"C2PA signing failed: {message}")
    if isinstance(exc, c2pa.C2paError.NotSupported):
        return UnsupportedMedia(
            f"c2pa cannot embed a manifest in this {media_type} file: {message}"
        )
    return CorruptInput(f"c2pa could not parse the {media_type} file: {message}")


@functools.cache
def supported_media_types() -> frozenset[str]:
    """MIME types c2pa can embed a manifest in (its list also holds bare extensions)."""
    return frozenset(t for t in c2pa.Builder.get_supported_mime_types() if "/" in t)


@functools.cache
def _readable_media_types() -> frozenset[str]:
    return frozenset(t for t in c2pa.Reader.get_supported_mime_types() if "/" in t)


# a 1x1 grey PNG for the credential probe
_PROBE_PNG = (
    png_format.SIGNATURE
    + png_format.make_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    + png_format.make_chunk(b"IDAT", zlib.compress(b"\x00\x80"))
    + png_format.make_chunk(b"IEND", b"")
)


# ======================================================================= reading
@dataclass(frozen=True)
class ProvenanceReport:
    """What a file's active C2PA manifest says, and whether to believe it."""

    #: c2pa's verdict: "Trusted" (valid and signer anchored), "Valid" (valid,
    #: signer not anchored) or "Invalid" (something failed, see the flags)
    state: str
    #: the content hash (hard binding) does not match: bytes changed after signing
    content_altered: bool
    #: the signature verifies and its certificate chains to a trust anchor
    signer_trusted: bool
    #: claim, signature and assertions are undamaged (trust and content aside)
    manifest_intact: bool
    signer: str | None  # certificate common name, else issuer
    signer_issuer: str | None  # certificate issuer organisation
    claim_generator: str | None  # e.g. "aigc-label 0.1.0"
    title: str | None
    actions: list[str] = field(default_factory=list)  # e.g. ["c2pa.created"]
    digital_source_types: list[str] = field(default_factory=list)
    software_agents: list[str] = field(default_factory=list)
    gb_record: dict[str, Any] | None = None  # the cn.tc260.aigc assertion's data
    #: every failure c2pa reported, as {"code", "explanation"}
    validation_errors: list[dict[str, str]] = field(default_factory=list)
    #: the active manifest's direct ingredients, e.g. the producer's file a
    #: platform re-signed. Each: "title" (else its manifest's), "relationship"
    #: ("parentOf", ...), "format", "active_manifest" (its manifest's label;
    #: None without provenance), "claim_generator", "signer", "actions",
    #: "gb_record", "validation_state" ("Trusted"/"Valid"/"Invalid"; None
    #: without a manifest), "content_altered" (its bytes no longer matched its
    #: manifest when it was taken in), "validation_errors" (codes)
    ingredients: list[dict[str, Any]] = field(default_factory=list)
    #: the active manifest's validation in one word (see :func:`validation_word`)
    validation: str = "invalid"
    #: every manifest reachable from the active one through ingredients'
    #: ``active_manifest`` links, breadth first (see :func:`_chain`)
    manifests: list[dict[str, Any]] = field(default_factory=list)
    #: the chain was longer or deeper than the limits and was cut there
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, Any]:
        """The report's ``c2pa`` object: the active label, its validation, the walked chain."""
        active = next((m["label"] for m in self.manifests if m["active"]), None)
        return {
            "active": active,
            "validation": self.validation,
            "truncated": self.truncated,
            "manifests": self.manifests,
        }


def read_manifest(
    data: bytes,
    media_type: str,
    trust_anchors_pem: str | None = None,
    *,
    limits: Limits = DEFAULT_LIMITS,
) -> ProvenanceReport | None:
    """Verify and summarise the C2PA manifest in ``data``; None if it has none.

    ``trust_anchors_pem`` (PEM CA certificates) decides ``signer_trusted``;
    without it every signer is untrusted, yet an unaltered file still reads
    ``content_altered=False``. Nothing is fetched from the network (no
    remote manifests, no OCSP). A damaged manifest yields a report with
    state "Invalid"; bytes c2pa cannot read at all raise CorruptInput.
    """
    if media_type not in _readable_media_types():
        raise UnsupportedMedia(f"C2PA manifests cannot be read from {media_type} files")
    if not data:
        raise CorruptInput("the file is empty")
    limits.check("max_bytes", len(data), "the file")
    context = _reader_context(trust_anchors_pem)
    try:
        reader = c2pa.Reader.try_create(media_type, io.BytesIO(data), None, context)
        if reader is None:
            store = None
        else:
            with reader:
                store = json.loads(reader.json())
    except c2pa.C2paError as exc:
        if _has_manifest_marker(data):
            return _unreadable_report(f"c2pa could not parse it: {_c2pa_message(exc)}")
        raise CorruptInput(
            f"c2pa could not read this {media_type} file: {_c2pa_message(exc)}"
        ) from None
    except ValueError as exc:  # json from c2pa that does not parse
        return _unreadable_report(f"c2pa returned unreadable JSON: {exc}")
    if store is None:
        if _has_manifest_marker(data):
            return _unreadable_report(
                "the file contains C2PA manifest labels but c2pa found no manifest store"
            )
        return None
    return _report_from_store(store)


def _reader_context(trust_anchors_pem: str | None) -> c2pa.Context:
    settings: dict[str, Any] = {
        # verification must stay offline and deterministic
        "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
    }
    if trust_anchors_pem:
        _check_trust_anchors(trust_anchors_pem)
        settings["trust"] = {"user_anchors": trust_anchors_pem}
    # a Context per call: cheap (~0.1 ms) and never shared between threads
    return c2pa.Context(c2pa.Settings.from_dict(settings))


@functools.lru_cache(maxsize=16)
def _check_trust_anchors(pem: str) -> None:
    # c2pa silently ignores anchors it cannot parse, which would make every
    # signer look untrusted for a configuration typo; say so instead
    try:
        x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise SigningError(
            "the C2PA trust anchors are not PEM X.509 certificates "
            "(expected -----BEGIN CERTIFICATE----- blocks)"
        ) from None


def _has_manifest_marker(data: bytes) -> bool:
    # JUMBF box labels every C2PA manifest carries; unlikely in anything else
    return b"c2pa.signature" in data or b"c2pa.claim" in data


def _unreadable_report(why: str) -> ProvenanceReport:
    return ProvenanceReport(
        validation="invalid",
        state="Invalid",
        content_altered=False,
        signer_trusted=False,
        manifest_intact=False,
        signer=None,
        signer_issuer=None,
        claim_generator=None,
        title=None,
        validation_errors=[
            {"code": UNREADABLE_CODE, "explanation": f"the C2PA manifest is damaged: {why}"}
        ],
    )


def _report_from_store(store: dict[str, Any]) -> ProvenanceReport:
    manifests = store.get("manifests") or {}
    active = manifests.get(store.get("active_manifest") or "") or {}
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    failures: list[dict[str, Any]] = list(results.get("failure") or [])
    seen = {(f.get("code"), f.get("url")) for f in failures}
    # older or partial stores only carry the flat validation_status list
    for status in store.get("validation_status") or []:
        if (status.get("code"), status.get("url")) not in seen:
            failures.append(status)
    failure_codes = [str(f.get("code", "")) for f in failures]
    success_codes = {str(s.get("code", "")) for s in results.get("success") or []}

    content_altered = any(code in _CONTENT_HASH_MISMATCH for code in failure_codes)
    signer_trusted = "signingCredential.trusted" in success_codes and not any(
        code.startswith(("signingCredential.", "claimSignature.")) for code in failure_codes
    )
    manifest_intact = bool(active) and not any(
        code not in _CONTENT_HASH_MISMATCH
        and not code.startswith(("signingCredential.", "timeStamp."))
        for code in failure_codes
    )
    state = store.get("validation_state") or ("Invalid" if failures else "Valid")

    actions, source_types, agents, gb_record = _summarise_assertions(active)
    sig = active.get("signature_info") or {}
    active_label = str(store.get("active_manifest") or "")
    manifests, truncated = _chain(store, active_label, failure_codes, signer_trusted)
    return ProvenanceReport(
        validation=validation_word(failure_codes, signer_trusted) if active else "invalid",
        manifests=manifests,
        truncated=truncated,
        state=str(state),
        content_altered=content_altered,
        signer_trusted=signer_trusted,
        manifest_intact=manifest_intact,
        signer=sig.get("common_name") or sig.get("issuer"),
        signer_issuer=sig.get("issuer"),
        claim_generator=_claim_generator(active),
        title=active.get("title"),
        actions=actions,
        digital_source_types=source_types,
        software_agents=agents,
        gb_record=gb_record,
        validation_errors=[
            {"code": str(f.get("code", "")), "explanation": str(f.get("explanation", ""))}
            for f in failures
        ],
        ingredients=_ingredients(store, active_label, active),
    )


#: how far down the ingredient chain :func:`_chain` reads, and how many
#: manifests in all: real exports nest two or three deep; a store built to
#: make a verifier walk forever stops here
MAX_CHAIN_DEPTH = 8
MAX_CHAIN_MANIFESTS = 64

# failure codes that say the certificate, not the content, is the problem
_CERTIFICATE_EXPIRED = ("signingCredential.expired", "claimSignature.outsideValidity")
# informational failures that say nothing about content, claim or certificate
_NOT_DECISIVE = ("timeStamp.untrusted", "timeStamp.outsideValidity", "timeStamp.malformed")


def validation_word(failure_codes: list[str], trusted: bool) -> str:
    """One manifest's validation in the report's vocabulary.

    ``content-altered``: the hard binding no longer matches (bytes changed
    after signing); ``invalid``: the claim, its signature or its assertions
    are damaged; ``certificate-expired`` / ``certificate-invalid``: the
    content and claim hold but the signer's certificate is outside its
    validity or unusable; ``trusted``: all holds and the signer chains to a
    trust anchor; ``valid-untrusted``: all holds, the signer is simply not in
    the trust list (what most real exports read as without one).
    """
    codes = [
        c
        for c in failure_codes
        if c not in ("signingCredential.untrusted", "signingCredential.trusted")
        and not c.startswith(_NOT_DECISIVE)
    ]
    if any(c in _CONTENT_HASH_MISMATCH for c in codes):
        return "content-altered"
    certificate = [
        c for c in codes if c.startswith("signingCredential.") or c in _CERTIFICATE_EXPIRED
    ]
    if [c for c in codes if c not in certificate]:
        return "invalid"
    if any(c.startswith(_CERTIFICATE_EXPIRED) for c in certificate):
        return "certificate-expired"
    if certificate:
        return "certificate-invalid"
    return "trusted" if trusted else "valid-untrusted"


def _chain(
    store: dict[str, Any], active_label: str, active_failures: list[str], active_trusted: bool
) -> tuple[list[dict[str, Any]], bool]:
    """Every manifest reachable from the active one, breadth first, with limits.

    Real exports often carry the AI origin only below the active manifest
    (ChatGPT: ``c2pa.opened`` over a ``parentOf`` ingredient that was
    ``c2pa.created``; Gemini: two levels down), so a verifier must read the
    whole chain. Each manifest is read once (a store may link one twice, or in
    a loop); each summary says its depth and how it was validated: the active
    one by this reader, an ingredient's by what its taker recorded plus what
    this reader re-checked (:func:`_ingredient_validation`).
    """
    manifests = store.get("manifests") or {}
    deltas: dict[str, dict[str, Any]] = {}
    for delta in (store.get("validation_results") or {}).get("ingredientDeltas") or []:
        if isinstance(delta, dict) and isinstance(delta.get("validationDeltas"), dict):
            deltas[str(delta.get("ingredientAssertionURI"))] = delta["validationDeltas"]
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    # (label, depth, validation word, codes, held by, relationship)
    queue: list[tuple[str, int, str, list[str], str | None, str | None]] = [
        (
            active_label,
            0,
            validation_word(active_failures, active_trusted),
            list(dict.fromkeys(active_failures)),
            None,
            None,
        )
    ]
    truncated = False
    while queue:
        label, depth, word, codes, parent, relationship = queue.pop(0)
        manifest = manifests.get(label)
        if label in seen or not isinstance(manifest, dict):
            continue
        if len(out) >= MAX_CHAIN_MANIFESTS:
            truncated = True
            break
        seen.add(label)
        summary = _manifest_summary(label, manifest, depth, word, codes)
        summary["ingredient_of"] = parent
        summary["relationship"] = relationship
        out.append(summary)
        for ingredient in manifest.get("ingredients") or []:
            if not isinstance(ingredient, dict) or not ingredient.get("active_manifest"):
                continue
            child = str(ingredient["active_manifest"])
            if child in seen:
                continue
            if depth + 1 > MAX_CHAIN_DEPTH:
                truncated = True
                continue
            uri = f"self#jumbf=/c2pa/{label}/c2pa.assertions/{ingredient.get('label')}"
            state, _, child_codes = _ingredient_validation(
                ingredient.get("validation_results"), deltas.get(uri), True
            )
            child_word = validation_word(child_codes, state == "Trusted")
            queue.append(
                (child, depth + 1, child_word, child_codes, label, ingredient.get("relationship"))
            )
    return out, truncated


def _manifest_summary(
    label: str, manifest: dict[str, Any], depth: int, word: str, codes: list[str]
) -> dict[str, Any]:
    sig = manifest.get("signature_info") or {}
    actions: list[dict[str, Any]] = []
    for assertion in manifest.get("assertions") or []:
        if not isinstance(assertion, dict):
            continue
        base = str(assertion.get("label", "")).split("__", 1)[0]
        body = assertion.get("data")
        if base not in ("c2pa.actions", "c2pa.actions.v2") or not isinstance(body, dict):
            continue
        for action in body.get("actions") or []:
            if isinstance(action, dict) and action.get("action"):
                actions.append(
                    {
                        "action": str(action["action"]),
                        "digital_source_type": (
                            str(action["digitalSourceType"])
                            if action.get("digitalSourceType")
                            else None
                        ),
                        "software_agent": _agent_name(action.get("softwareAgent")),
                    }
                )
    ingredients = [
        {
            "title": ingredient.get("title"),
            "relationship": ingredient.get("relationship"),
            "manifest": ingredient.get("active_manifest") or None,
        }
        for ingredient in manifest.get("ingredients") or []
        if isinstance(ingredient, dict)
    ]
    return {
        "label": label,
        "active": depth == 0,
        "depth": depth,
        "title": manifest.get("title"),
        "claim_generator": _claim_generator(manifest),
        "signer": {
            "issuer": sig.get("issuer"),
            "common_name": sig.get("common_name"),
        },
        "actions": actions,
        "ingredients": ingredients,
        "validation": word,
        "validation_codes": codes,
    }


def _summarise_assertions(
    manifest: dict[str, Any],
) -> tuple[list[str], list[str], list[str], dict[str, Any] | None]:
    """(actions, digital source types, software agents, GB record) of one manifest."""
    actions: list[str] = []
    source_types: list[str] = []
    agents: list[str] = []
    gb_record: dict[str, Any] | None = None
    for assertion in manifest.get("assertions") or []:
        if not isinstance(assertion, dict):
            continue
        label = str(assertion.get("label", ""))
        body = assertion.get("data")
        base = label.split("__", 1)[0]  # c2pa suffixes repeated labels with __1, __2
        if base in ("c2pa.actions", "c2pa.actions.v2") and isinstance(body, dict):
            for action in body.get("actions") or []:
                if not isinstance(action, dict):
                    continue
                if action.get("action"):
                    actions.append(str(action["action"]))
                if action.get("digitalSourceType"):
                    source_types.append(str(action["digitalSourceType"]))
                agent = _agent_name(action.get("softwareAgent"))
                if agent:
                    agents.append(agent)
        elif base == GB_ASSERTION_LABEL and gb_record is None and isinstance(body, dict):
            gb_record = _annex_e_order(body)
    return actions, source_types, agents, gb_record


def _ingredients(
    store: dict[str, Any], active_label: str, active: dict[str, Any]
) -> list[dict[str, Any]]:
    """Summaries of the active manifest's direct ingredients (see ProvenanceReport)."""
    manifests = store.get("manifests") or {}
    # what this reader found when it re-checked each ingredient's manifest (its
    # own trust anchors), keyed by the ingredient assertion's URI
    deltas: dict[str, dict[str, Any]] = {}
    for delta in (store.get("validation_results") or {}).get("ingredientDeltas") or []:
        if isinstance(delta, dict) and isinstance(delta.get("validationDeltas"), dict):
            deltas[str(delta.get("ingredientAssertionURI"))] = delta["validationDeltas"]
    out: list[dict[str, Any]] = []
    for ingredient in active.get("ingredients") or []:
        if not isinstance(ingredient, dict):
            continue
        label = ingredient.get("active_manifest")
        manifest = manifests.get(label) if label else None
        if not isinstance(manifest, dict):
            manifest = {}
        actions, _, _, gb_record = _summarise_assertions(manifest)
        uri = f"self#jumbf=/c2pa/{active_label}/c2pa.assertions/{ingredient.get('label')}"
        state, altered, codes = _ingredient_validation(
            ingredient.get("validation_results"), deltas.get(uri), bool(label)
        )
        out.append(
            {
                # c2pa does not copy the parent's title into the ingredient
                "title": ingredient.get("title") or manifest.get("title"),
                "relationship": ingredient.get("relationship"),
                "format": ingredient.get("format"),
                "active_manifest": label or None,
                "claim_generator": _claim_generator(manifest) if manifest else None,
                "signer": (manifest.get("signature_info") or {}).get("common_name"),
                "actions": actions,
                "gb_record": gb_record,
                "validation_state": state,
                "content_altered": altered,
                "validation_errors": codes,
            }
        )
    return out


def _ingredient_validation(
    recorded: Any, delta: dict[str, Any] | None, has_manifest: bool
) -> tuple[str | None, bool, list[str]]:
    """(state, content altered, failure codes) of one ingredient's manifest.

    c2pa reports no per-ingredient state, only what the signer recorded when
    it took the ingredient in (``validation_results``: the hash check against
    the parent's bytes, which only that moment could do, and trust as the
    signer saw it) and what this reader re-checked (the delta: manifest
    integrity, and trust against this reader's anchors). The reader's view of
    trust replaces the signer's.
    """
    if not has_manifest:
        return None, False, []
    results = (recorded or {}).get("activeManifest") if isinstance(recorded, dict) else None
    results = results if isinstance(results, dict) else {}
    recorded_failures = [str(f.get("code", "")) for f in results.get("failure") or []]
    recorded_successes = {str(s.get("code", "")) for s in results.get("success") or []}
    if delta is None:
        trusted = "signingCredential.trusted" in recorded_successes
        fresh_failures: list[str] = []
    else:
        # this reader's trust verdict counts, not the one the signer recorded
        # (a reader without anchors trusts nobody, whatever the signer saw)
        trusted = "signingCredential.trusted" in {
            str(s.get("code", "")) for s in delta.get("success") or []
        }
        fresh_failures = [str(f.get("code", "")) for f in delta.get("failure") or []]
    failures = [
        code
        for code in dict.fromkeys(recorded_failures + fresh_failures)  # c2pa repeats codes
        if code not in ("signingCredential.untrusted", "signingCredential.trusted")
    ]
    altered = any(code in _CONTENT_HASH_MISMATCH for code in failures)
    state = "Invalid" if failures else "Trusted" if trusted else "Valid"
    if not trusted:
        failures.append("signingCredential.untrusted")  # as the active manifest's report says
    return state, altered, failures


def _agent_name(agent: Any) -> str | None:
    if isinstance(agent, str):
        return agent or None
    if isinstance(agent, dict) and agent.get("name"):
        version = agent.get("version")
        return f"{agent['name']} {version}" if version else str(agent["name"])
    return None


def _claim_generator(active: dict[str, Any]) -> str | None:
    info = active.get("claim_generator_info")
    if isinstance(info, list) and info and isinstance(info[0], dict) and info[0].get("name"):
        return _agent_name(info[0])
    legacy = active.get("claim_generator")
    return str(legacy) if legacy else None


def _annex_e_order(body: dict[str, Any]) -> dict[str, Any]:
    # CBOR gives the keys back sorted; show them in the standard's order
    ordered = {k: body[k] for k in KEYS if k in body}
    ordered.update({k: v for k, v in body.items() if k not in ordered})
    return ordered
