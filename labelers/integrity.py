"""ReservedCode1 / ReservedCode2: signatures that bind a record to its content.

TC260-PG-202511A leaves the two reserved fields to the producer's and the
platform's integrity data. We fill them with a signature over the fields that
party owns plus a SHA-256 digest of the content essence
(``labelers.formats.content_digest``: pixels/content, not the metadata that
labelling and propagation rewrite). Two schemes, chosen per signing key:

- Ed25519 (``cryptography``): the portable choice, the default;
- SM2 with SM3 (GB/T 32918.2, GB/T 32905; what the TC260 integrity guidance
  uses), through the pure-Python ``gmssl`` package.

Field value (Annex E charset: printable ASCII, no space or backslash)::

    ED25519.<kid>.<digest>.<signature>
    SM2.<kid>.<digest>.<signature>

- ``kid``: first 16 hex digits of SHA-256 of the raw public key (Ed25519: the
  32-byte key; SM2: the 65-byte uncompressed point ``04||x||y``);
- ``digest``: base64url (no padding) of the 32-byte content digest, so a
  verifier can tell "the content changed" from "a field changed";
- ``signature``: base64url (no padding) of 64 bytes: the Ed25519 signature, or
  SM2's ``r||s`` (two 32-byte big-endian integers, not DER).

Signed message (both schemes): the UTF-8 bytes of the compact JSON array

- ReservedCode1 (producer): ``["GB45438-RC1", Label, ContentProducer, ProduceID, digest_hex]``
- ReservedCode2 (platform): ``["GB45438-RC2", Label, ContentProducer, ProduceID,
  ReservedCode1, ContentPropagator, PropagateID, digest_hex]``

(``json.dumps(..., ensure_ascii=True, separators=(",", ":"))``). The producer
signs only the fields it owns, so a platform writing its propagation fields
does not break the producer's signature; the platform's signature covers the
producer's fields and signature too.

SM2 specifics: the signed hash is ``SM3(Z || message)`` with ``Z`` computed
from the default user ID ``1234567812345678`` (ENTL 0x0080), the curve
parameters and the public key, as GB/T 32918.2 and GM/T 0009 prescribe
(interoperable with ``openssl dgst -sm3 -sigopt distid:1234567812345678``).
SM2 keys are stored as standard PEM: the private key as PKCS#8
(``-----BEGIN PRIVATE KEY-----``, the layout ``openssl genpkey -algorithm SM2``
writes), the public key as SubjectPublicKeyInfo (``-----BEGIN PUBLIC KEY-----``);
a public key may also be given as the hex of the 65-byte point.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from gmssl import sm2 as _gm_sm2

from labelers.errors import SigningError
from labelers.record import Record

Scheme = Literal["ed25519", "sm2"]
SCHEMES: tuple[Scheme, ...] = ("ed25519", "sm2")
PREFIX: dict[Scheme, str] = {"ed25519": "ED25519", "sm2": "SM2"}
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


# --- SM2 (GB/T 32918) on the recommended curve, signing through gmssl -------

_CURVE = _gm_sm2.default_ecc_table
_P, _N = int(_CURVE["p"], 16), int(_CURVE["n"], 16)
_A, _B = int(_CURVE["a"], 16), int(_CURVE["b"], 16)
# Fixed DER layouts (id-ecPublicKey + curve OID 1.2.156.10197.1.301), as OpenSSL writes them.
_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d034200")
_PKCS8_HEAD = bytes.fromhex(
    "308187020100301306072a8648ce3d020106082a811ccf5501822d046d306b0201010420"
)
_PKCS8_MID = bytes.fromhex("a144034200")
_SM2_CURVE_OID = bytes.fromhex("06082a811ccf5501822d")


def _pem(label: str, der: bytes) -> str:
    body = base64.b64encode(der).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""])


def _unpem(text: str, label: str) -> bytes | None:
    """The DER inside a ``label`` PEM block, or None when there is no such block."""
    begin, end = f"-----BEGIN {label}-----", f"-----END {label}-----"
    if begin not in text or end not in text:
        return None
    body = text.split(begin, 1)[1].split(end, 1)[0]
    try:
        return base64.b64decode("".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def _gm(private_hex: str, point: bytes) -> _gm_sm2.CryptSM2:
    crypt = _gm_sm2.CryptSM2(private_key=private_hex, public_key=point[1:].hex())
    # gmssl's constructor strips a "04" prefix with str.lstrip, which also eats
    # leading 0/4 digits of x: set the 128-hex x||y form ourselves.
    crypt.public_key = point[1:].hex()
    return crypt


@dataclass(frozen=True)
class Sm2PublicKey:
    """An SM2 public key: the 65-byte uncompressed point ``04||x||y``, on the curve."""

    point: bytes

    def __post_init__(self) -> None:
        if len(self.point) != 65 or self.point[0] != 4:
            raise SigningError("SM2 public key must be a 65-byte uncompressed point (04||x||y)")
        x, y = int.from_bytes(self.point[1:33], "big"), int.from_bytes(self.point[33:], "big")
        if x >= _P or y >= _P or (y * y - (x * x * x + _A * x + _B)) % _P != 0:
            raise SigningError("SM2 public key is not a point on the SM2 curve")

    @classmethod
    def from_text(cls, text: str) -> Sm2PublicKey:
        """SubjectPublicKeyInfo PEM, or hex of the point (with or without the 04 prefix)."""
        der = _unpem(text, "PUBLIC KEY")
        if der is not None:
            if len(der) != len(_SPKI_PREFIX) + 65 or not der.startswith(_SPKI_PREFIX):
                raise SigningError("PEM public key is not an SM2 SubjectPublicKeyInfo")
            return cls(der[len(_SPKI_PREFIX) :])
        try:
            raw = bytes.fromhex(text.strip())
        except ValueError:
            raise SigningError("SM2 public key is neither PEM nor hex") from None
        return cls(b"\x04" + raw if len(raw) == 64 else raw)

    def pem(self) -> str:
        return _pem("PUBLIC KEY", _SPKI_PREFIX + self.point)

    def verify(self, signature: bytes, data: bytes) -> bool:
        """SM2 verification of ``r||s`` over SM3(Z||data), default user ID."""
        if len(signature) != 64:
            return False
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        # gmssl does not range-check r and s (GB/T 32918.2 6.1 B1, B2 do)
        if not (0 < r < _N and 0 < s < _N):
            return False
        try:
            return bool(_gm("", self.point).verify_with_sm3(signature.hex(), data))
        except (TypeError, ValueError):  # degenerate point sums surface as None arithmetic
            return False


class Sm2PrivateKey:
    """An SM2 private key ``d`` (1 <= d <= n-2) and its public point."""

    def __init__(self, d: int, point: bytes | None = None) -> None:
        if not 0 < d < _N - 1:
            raise SigningError("SM2 private key is out of range")
        derived = bytes.fromhex("04" + _gm("", b"\x04" + bytes(64))._kg(d, _CURVE["g"]))
        if point is not None and point != derived:
            raise SigningError("SM2 private key does not match the public key stored with it")
        self._d = d
        self._public = Sm2PublicKey(derived)
        self._crypt = _gm(f"{d:064x}", derived)

    @classmethod
    def generate(cls) -> Sm2PrivateKey:
        return cls(secrets.randbelow(_N - 2) + 1)

    @classmethod
    def from_pkcs8(cls, der: bytes) -> Sm2PrivateKey:
        head, mid = len(_PKCS8_HEAD), len(_PKCS8_HEAD) + 32
        if (
            len(der) != mid + len(_PKCS8_MID) + 65
            or not der.startswith(_PKCS8_HEAD)
            or der[mid : mid + len(_PKCS8_MID)] != _PKCS8_MID
        ):
            raise SigningError(
                "PEM key is not an SM2 PKCS#8 key in the layout of `openssl genpkey -algorithm SM2`"
            )
        return cls(int.from_bytes(der[head:mid], "big"), der[mid + len(_PKCS8_MID) :])

    def public_key(self) -> Sm2PublicKey:
        return self._public

    def pkcs8_pem(self) -> bytes:
        der = _PKCS8_HEAD + self._d.to_bytes(32, "big") + _PKCS8_MID + self._public.point
        return _pem("PRIVATE KEY", der).encode()

    def sign(self, data: bytes) -> bytes:
        """``r||s`` over SM3(Z||data); the nonce comes from ``secrets``, not gmssl's
        default (``random.choice``, which is predictable and would leak the key)."""
        while True:
            k = secrets.randbelow(_N - 1) + 1
            rs = self._crypt.sign_with_sm3(data, f"{k:064x}")
            if rs is not None:  # None: r == 0 or r + k == n, retry with a new nonce
                return bytes.fromhex(rs)


PrivateKey = Ed25519PrivateKey | Sm2PrivateKey
PublicKey = Ed25519PublicKey | Sm2PublicKey


def _scheme_of(key: PrivateKey | PublicKey) -> Scheme:
    return "sm2" if isinstance(key, Sm2PrivateKey | Sm2PublicKey) else "ed25519"


def key_id(public_key: PublicKey) -> str:
    if isinstance(public_key, Sm2PublicKey):
        raw = public_key.point
    else:
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


def _load_private(pem: bytes) -> PrivateKey:
    text = pem.decode("ascii", "replace")
    der = _unpem(text, "PRIVATE KEY")
    if der is not None and _SM2_CURVE_OID in der[:32]:  # cryptography cannot load SM2 keys
        return Sm2PrivateKey.from_pkcs8(der)
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SigningError(f"record signing key is not an unencrypted PEM key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError("record signing key must be an Ed25519 or SM2 key")
    return key


class RecordSigner:
    """Signs records with one key (the service's, for its identities): Ed25519 or SM2."""

    def __init__(self, private_key: PrivateKey) -> None:
        self._key = private_key
        self.scheme: Scheme = _scheme_of(private_key)
        self.public_key: PublicKey = private_key.public_key()
        self.kid = key_id(self.public_key)

    @classmethod
    def from_pem(cls, pem: bytes) -> RecordSigner:
        """An Ed25519 or SM2 PKCS#8 PEM private key (unencrypted); the scheme follows the key."""
        return cls(_load_private(pem))

    @classmethod
    def load_or_create(cls, path: Path, scheme: str = "ed25519") -> tuple[RecordSigner, bool]:
        """The key at ``path``; created (0600, atomically) when missing.

        An existing key of another scheme than ``scheme`` is an error, not a
        silent switch of the signature type.
        """
        if scheme not in SCHEMES:
            raise SigningError(f"record signing scheme must be one of {SCHEMES}, not {scheme!r}")
        if path.exists():
            return cls._expect(cls.from_pem(path.read_bytes()), scheme, path), False
        path.parent.mkdir(parents=True, exist_ok=True)
        if scheme == "sm2":
            pem = Sm2PrivateKey.generate().pkcs8_pem()
        else:
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
        return cls._expect(cls.from_pem(path.read_bytes()), scheme, path), created

    @staticmethod
    def _expect(signer: RecordSigner, scheme: str, path: Path) -> RecordSigner:
        if signer.scheme != scheme:
            raise SigningError(f"record signing key {path} is {signer.scheme}, expected {scheme}")
        return signer

    def public_pem(self) -> str:
        if isinstance(self.public_key, Sm2PublicKey):
            return self.public_key.pem()
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def sign(self, role: str, record: Record, digest: bytes) -> str:
        signature = self._key.sign(message(role, record, digest))
        return f"{PREFIX[self.scheme]}.{self.kid}.{_b64(digest)}.{_b64(signature)}"

    def sign_producer(self, record: Record, digest: bytes) -> Record:
        return record.with_fields(reserved_code1=self.sign(PRODUCER, record, digest))

    def sign_platform(self, record: Record, digest: bytes) -> Record:
        return record.with_fields(reserved_code2=self.sign(PLATFORM, record, digest))


@dataclass(frozen=True)
class KnownKey:
    public_key: PublicKey
    codes: frozenset[str]  # provider codes this key may sign for ("*" = any)

    @property
    def scheme(self) -> Scheme:
        return _scheme_of(self.public_key)


class Keyring:
    """Public keys of known producers and platforms (Ed25519 or SM2), by key id."""

    def __init__(self) -> None:
        self._keys: dict[str, KnownKey] = {}

    def add(self, public_key: PublicKey, codes: set[str] | frozenset[str]) -> None:
        kid = key_id(public_key)
        known = self._keys.get(kid)
        merged = frozenset(codes) | (known.codes if known else frozenset())
        self._keys[kid] = KnownKey(public_key, merged)

    def add_pem(self, pem: str, codes: set[str]) -> None:
        """An Ed25519 or SM2 SubjectPublicKeyInfo PEM, or the hex of an SM2 point."""
        der = _unpem(pem, "PUBLIC KEY")
        if der is None or der.startswith(_SPKI_PREFIX):
            try:
                self.add(Sm2PublicKey.from_text(pem), codes)
            except SigningError as exc:
                raise SigningError(f"public key for {sorted(codes)}: {exc.detail}") from None
            return
        try:
            key = serialization.load_pem_public_key(pem.encode())
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise SigningError(f"public key for {sorted(codes)} is not PEM: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise SigningError(f"public key for {sorted(codes)} must be Ed25519 or SM2")
        self.add(key, codes)

    @classmethod
    def from_json(cls, text: str) -> Keyring:
        """``{"<provider code>": "<PEM public key or SM2 point hex>", ...}``"""
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


def _signature_ok(key: PublicKey, signature: bytes, data: bytes) -> bool:
    if isinstance(key, Sm2PublicKey):
        return key.verify(signature, data)
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


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
    prefixes = {p: s for s, p in PREFIX.items()}
    if len(parts) != 4 or parts[0] not in prefixes:
        return Check(
            MALFORMED, f"{field} is not an ED25519. or SM2.<kid>.<digest>.<signature> value"
        )
    prefix, kid, digest_b64, sig_b64 = parts
    try:
        stated, signature = _unb64(digest_b64), _unb64(sig_b64)
    except (binascii.Error, ValueError):
        return Check(MALFORMED, f"{field} has invalid base64url", kid)
    known = keyring.get(kid)
    if known is None:
        return Check(UNKNOWN_KEY, f"{field} is signed by key {kid}, which is not configured", kid)
    if known.scheme != prefixes[prefix]:
        return Check(INVALID, f"{field} says {prefix} but key {kid} is {known.scheme}", kid)
    if "*" not in known.codes and code not in known.codes:
        return Check(INVALID, f"key {kid} is not registered for {code!r}", kid)
    if not _signature_ok(known.public_key, signature, message(role, record, stated)):
        return Check(INVALID, f"{field} does not match the record's fields", kid)
    if digest is None:
        return Check(VALID, f"{field} signature valid (content not checked)", kid)
    if stated != digest:
        return Check(INVALID, f"content changed since {field} was signed", kid)
    return Check(VALID, f"{field} signature valid for these fields and this content", kid)
