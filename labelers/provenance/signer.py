"""Signing with c2pa-python: checked signing material, and the signer.

:class:`C2paSigner` signs a file in memory with a manifest that says "created
by a trained algorithm" (IPTC digital source type ``trainedAlgorithmicMedia``)
and carries the GB 45438 Annex E record as the custom assertion
``cn.tc260.aigc``. No thumbnail, no timestamp authority, no network.
:meth:`C2paSigner.sign_update` re-signs a file a distribution platform has
rewritten (its propagation fields written into the record, perhaps a
visible label drawn): a new manifest with the platform's action whose
``parentOf`` ingredient is the file as received, so the producer's manifest
stays in the manifest store instead of being discarded.

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

Bad or unusable keys and certificates raise
:class:`~labelers.errors.SigningError`; bytes c2pa cannot parse raise
:class:`~labelers.errors.CorruptInput`; media c2pa cannot carry raise
:class:`~labelers.errors.UnsupportedMedia`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import threading
from pathlib import Path
from typing import Any

import c2pa
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from labelers.errors import CorruptInput, InvalidOption, SigningError, UnsupportedMedia
from labelers.formats import sniff
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.provenance.builder import (
    PARENT_ID,
    build_manifest,
    build_update_manifest,
    check_update_action,
)
from labelers.provenance.support import (
    PROBE_PNG,
    c2pa_message,
    has_manifest_marker,
    readable_media_types,
    supported_media_types,
)
from labelers.record import Record

DOCUMENT_SIGNING_EKU = ObjectIdentifier("1.3.6.1.5.5.7.3.36")

# EKUs c2pa accepts on a signer certificate (found by negative tests: anyExtendedKeyUsage,
# serverAuth only or no EKU fail at sign time with "the certificate is invalid")
_C2PA_EKUS = {
    ExtendedKeyUsageOID.EMAIL_PROTECTION,
    DOCUMENT_SIGNING_EKU,
    ExtendedKeyUsageOID.TIME_STAMPING,
    ExtendedKeyUsageOID.OCSP_SIGNING,
}

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
        check_update_action(action)
        record.validate()
        # a cheap byte test: reading the parent's manifest is c2pa's job when it
        # is added, and a parent without one is not added at all
        if parent is None or not has_manifest_marker(parent):
            manifest = build_update_manifest(record, software_agent, action, has_parent=False)
            return self._sign_bytes(data, media_type, manifest)
        manifest = build_update_manifest(record, software_agent, action, has_parent=True)
        try:
            parent_type = sniff(parent)
        except UnsupportedMedia:
            parent_type = media_type  # c2pa may still know it; it says so if not
        if parent_type not in readable_media_types():
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
                    {"relationship": "parentOf", "label": PARENT_ID},
                    parent_type,
                    io.BytesIO(parent_data),
                )
            except c2pa.C2paError as exc:
                raise CorruptInput(
                    f"the parent {parent_type} file's C2PA manifest cannot be kept as an "
                    f"ingredient: {c2pa_message(exc)}"
                ) from None
        try:
            builder.sign(signer, media_type, io.BytesIO(data), out)
        except c2pa.C2paError as exc:
            message = c2pa_message(exc)
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
                    f"c2pa rejected the signing key or certificate: {c2pa_message(exc)}"
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
            self._sign_bytes(PROBE_PNG, "image/png", manifest)
        except SigningError as exc:
            problems = certificate_problems(leaf)
            hint = f" (the certificate {'; '.join(problems)})" if problems else ""
            raise SigningError(f"{exc.detail}{hint}") from None
        except (CorruptInput, UnsupportedMedia) as exc:  # cannot be the probe's fault
            raise SigningError(f"c2pa could not sign with this material: {exc.detail}") from None


def _check_signing_input(data: bytes, media_type: str, limits: Limits) -> None:
    if media_type not in supported_media_types():
        raise UnsupportedMedia(f"C2PA manifests cannot be embedded in {media_type} files")
    if not data:
        raise CorruptInput("the file is empty")
    limits.check("max_bytes", len(data), "the file")


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
    if not same_public_key(leaf, key):
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


def same_public_key(cert: x509.Certificate, key: Any) -> bool:
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


def _signing_failure(exc: c2pa.C2paError, media_type: str) -> Exception:
    message = c2pa_message(exc)
    lowered = message.lower()
    if isinstance(exc, c2pa.C2paError.Signature) or "certificate" in lowered:
        return SigningError(f"C2PA signing failed: {message}")
    if isinstance(exc, c2pa.C2paError.NotSupported):
        return UnsupportedMedia(
            f"c2pa cannot embed a manifest in this {media_type} file: {message}"
        )
    return CorruptInput(f"c2pa could not parse the {media_type} file: {message}")
