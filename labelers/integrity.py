"""ReservedCode1 / ReservedCode2: signatures that bind a record to its content.

TC260-PG-202511A leaves the two reserved fields to the producer's and the
platform's integrity data. We fill them with an Ed25519 signature (portable,
in ``cryptography``; SM2/SM3 would need a library we do not ship yet) over the
fields that party owns plus a SHA-256 digest of the content essence
(``labelers.formats.content_digest``: pixels/content, not the metadata that
labelling and propagation rewrite).

Field value (Annex E charset: printable ASCII, no space or backslash)::

    ED25519.<kid>.<digest>.<signature>

- ``kid``: first 16 hex digits of SHA-256 of the raw 32-byte public key;
- ``digest``: base64url (no padding) of the 32-byte content digest, so a
  verifier can tell "the content changed" from "a field changed";
- ``signature``: base64url (no padding) of the 64-byte Ed25519 signature.

Signed message: the UTF-8 bytes of the compact JSON array

- ReservedCode1 (producer): ``["GB45438-RC1", Label, ContentProducer, ProduceID, digest_hex]``
- ReservedCode2 (platform): ``["GB45438-RC2", Label, ContentProducer, ProduceID,
  ReservedCode1, ContentPropagator, PropagateID, digest_hex]``

(``json.dumps(..., ensure_ascii=True, separators=(",", ":"))``). The producer
signs only the fields it owns, so a platform writing its propagation fields
does not break the producer's signature; the platform's signature covers the
producer's fields and signature too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from labelers.errors import SigningError
from labelers.record import Record

SCHEME = "ED25519"
PRODUCER, PLATFORM = "producer", "platform"

# verification outcomes
VALID, INVALID, UNKNOWN_KEY, ABSENT, MALFORMED = (
    "valid",
    "invalid",
    "unknown-key",
    "absent",
    "malformed",
)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def message(role: str, record: Record, digest: bytes) -> bytes:
    """The exact bytes signed for ``role`` (see the module docstring)."""
    if role == PRODUCER:
        parts = ["GB45438-RC1", record.label, record.content_producer, record.produce_id]
    else:
        parts = [
            "GB45438-RC2",
            record.label,
            record.content_producer,
            record.produce_id,
            record.reserved_code1,
            record.content_propagator,
            record.propagate_id,
        ]
    parts.append(digest.hex())
    return json.dumps(parts, ensure_ascii=True, separators=(",", ":")).encode()


class RecordSigner:
    """Signs records with one Ed25519 key (the service's, for its identities)."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.kid = key_id(self.public_key)

    @classmethod
    def from_pem(cls, pem: bytes) -> RecordSigner:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise SigningError(f"record signing key is not an unencrypted PEM key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningError("record signing key must be an Ed25519 key")
        return cls(key)

    @classmethod
    def load_or_create(cls, path: Path) -> tuple[RecordSigner, bool]:
        """The key at ``path``; created (0600, atomically) when missing."""
        if path.exists():
            return cls.from_pem(path.read_bytes()), False
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        try:
            os.link(tmp, path)  # fails if another process won the race: use theirs
            created = True
        except FileExistsError:
            created = False
        finally:
            tmp.unlink()
        return cls.from_pem(path.read_bytes()), created

    def public_pem(self) -> str:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def sign(self, role: str, record: Record, digest: bytes) -> str:
        signature = self._key.sign(message(role, record, digest))
        return f"{SCHEME}.{self.kid}.{_b64(digest)}.{_b64(signature)}"

    def sign_producer(self, record: Record, digest: bytes) -> Record:
        return record.with_fields(reserved_code1=self.sign(PRODUCER, record, digest))

    def sign_platform(self, record: Record, digest: bytes) -> Record:
        return record.with_fields(reserved_code2=self.sign(PLATFORM, record, digest))


@dataclass(frozen=True)
class KnownKey:
    public_key: Ed25519PublicKey
    codes: frozenset[str]  # provider codes this key may sign for ("*" = any)


class Keyring:
    """Public keys of known producers and platforms, by key id."""

    def __init__(self) -> None:
        self._keys: dict[str, KnownKey] = {}

    def add(self, public_key: Ed25519PublicKey, codes: set[str] | frozenset[str]) -> None:
        kid = key_id(public_key)
        known = self._keys.get(kid)
        merged = frozenset(codes) | (known.codes if known else frozenset())
        self._keys[kid] = KnownKey(public_key, merged)

    def add_pem(self, pem: str, codes: set[str]) -> None:
        try:
            key = serialization.load_pem_public_key(pem.encode())
        except ValueError as exc:
            raise SigningError(f"public key for {sorted(codes)} is not PEM: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise SigningError(f"public key for {sorted(codes)} must be Ed25519")
        self.add(key, codes)

    @classmethod
    def from_json(cls, text: str) -> Keyring:
        """``{"<provider code>": "<PEM public key>", ...}``"""
        ring = cls()
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SigningError(f"record public keys file is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise SigningError('record public keys must be {"<code>": "<PEM>"}')
        for code, pem in doc.items():
            ring.add_pem(str(pem), {str(code)})
        return ring

    def get(self, kid: str) -> KnownKey | None:
        return self._keys.get(kid)


@dataclass(frozen=True)
class Check:
    status: str  # valid | invalid | unknown-key | absent | malformed
    detail: str
    kid: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"status": self.status, "detail": self.detail, "key": self.kid}


def verify(role: str, record: Record, digest: bytes | None, keyring: Keyring) -> Check:
    """Check ReservedCode1 (producer) or ReservedCode2 (platform) of ``record``.

    ``digest`` is the content digest recomputed from the file, or None when
    the content is not at hand (record recovered from the ledger).
    """
    field, code = (
        ("ReservedCode1", record.content_producer)
        if role == PRODUCER
        else ("ReservedCode2", record.content_propagator)
    )
    value = record.reserved_code1 if role == PRODUCER else record.reserved_code2
    if not value:
        return Check(ABSENT, f"{field} is empty")
    parts = value.split(".")
    if len(parts) != 4 or parts[0] != SCHEME:
        return Check(MALFORMED, f"{field} is not an {SCHEME}.<kid>.<digest>.<signature> value")
    _, kid, digest_b64, sig_b64 = parts
    try:
        stated, signature = _unb64(digest_b64), _unb64(sig_b64)
    except (binascii.Error, ValueError):
        return Check(MALFORMED, f"{field} has invalid base64url", kid)
    known = keyring.get(kid)
    if known is None:
        return Check(UNKNOWN_KEY, f"{field} is signed by key {kid}, which is not configured", kid)
    if "*" not in known.codes and code not in known.codes:
        return Check(INVALID, f"key {kid} is not registered for {code!r}", kid)
    try:
        known.public_key.verify(signature, message(role, record, stated))
    except InvalidSignature:
        return Check(INVALID, f"{field} does not match the record's fields", kid)
    if digest is None:
        return Check(VALID, f"{field} signature valid (content not checked)", kid)
    if stated != digest:
        return Check(INVALID, f"content changed since {field} was signed", kid)
    return Check(VALID, f"{field} signature valid for these fields and this content", kid)
