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
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from gmssl import sm2 as _gm_sm2

from labelers import durable
from labelers.errors import SigningError
from labelers.formats import DIGEST_SCHEME
from labelers.record import KEYS, Record

Scheme = Literal["ed25519", "sm2"]
SCHEMES: tuple[Scheme, ...] = ("ed25519", "sm2")
PREFIX: dict[Scheme, str] = {"ed25519": "ED25519", "sm2": "SM2"}
PRODUCER, PLATFORM = "producer", "platform"

# verification outcomes: the signature holds; the content changed since it was
# signed; a signed field changed (or the signer may not sign for this code); the
# signer's key is not known; the field holds the party's own data that no
# public rule lets a verifier check (a vendor hash, a token, an RSA chain);
# empty; or it claims a form it does not follow
VALID, INVALID_CONTENT, INVALID_FIELD, UNKNOWN_KEY, UNVERIFIABLE, ABSENT, MALFORMED = (
    "valid",
    "invalid-content",
    "invalid-field",
    "unknown-key",
    "unverifiable",
    "absent",
    "malformed",
)
#: the outcomes that mean "do not trust this record's fields or content"
INVALID = frozenset({INVALID_CONTENT, INVALID_FIELD})

#: record formats a signer writes: ours (compact) or TC260-PG-202511A SecurityData
RecordFormat = Literal["compact", "tc260"]
RECORD_FORMATS: tuple[RecordFormat, ...] = ("compact", "tc260")


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

    @classmethod
    def from_x(cls, x: int, odd: bool) -> Sm2PublicKey | None:
        """The point with this x coordinate and y parity; None if there is none."""
        if not 0 <= x < _P:
            return None
        rhs = (x * x * x + _A * x + _B) % _P
        y = pow(rhs, (_P + 1) // 4, _P)  # p = 3 (mod 4): the square root, if any
        if y * y % _P != rhs:
            return None
        if y % 2 != odd:
            y = _P - y
        return cls(b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big"))

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


def _new_private_pem(scheme: str) -> bytes:
    if scheme == "sm2":
        return Sm2PrivateKey.generate().pkcs8_pem()
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class RecordSigner:
    """Signs records with one key (the service's, for its identities): Ed25519 or SM2.

    ``record_format`` says what the reserved field holds: ``compact`` (our
    ``<scheme>.<kid>.<digest>.<signature>``) or ``tc260`` (TC260-PG-202511A
    ``SecurityData`` JSON, SM2 only, see :func:`security_data`).
    """

    def __init__(self, private_key: PrivateKey, record_format: str = "compact") -> None:
        self._key = private_key
        self.scheme: Scheme = _scheme_of(private_key)
        self.public_key: PublicKey = private_key.public_key()
        self.kid = key_id(self.public_key)
        if record_format not in RECORD_FORMATS:
            raise SigningError(
                f"record format must be one of {RECORD_FORMATS}, not {record_format!r}"
            )
        if record_format == "tc260" and self.scheme != "sm2":
            raise SigningError(
                "the tc260 record format (SecurityData, SM3withSM2) needs an SM2 key "
                "(record scheme sm2)"
            )
        self.record_format = record_format

    @classmethod
    def from_pem(cls, pem: bytes, record_format: str = "compact") -> RecordSigner:
        """An Ed25519 or SM2 PKCS#8 PEM private key (unencrypted); the scheme follows the key."""
        return cls(_load_private(pem), record_format)

    @classmethod
    def load_or_create(
        cls, path: Path, scheme: str = "ed25519", record_format: str = "compact"
    ) -> tuple[RecordSigner, bool]:
        """The key at ``path``; created (0600, atomically) when missing.

        An existing key of another scheme than ``scheme`` is an error, not a
        silent switch of the signature type.
        """
        if scheme not in SCHEMES:
            raise SigningError(f"record signing scheme must be one of {SCHEMES}, not {scheme!r}")
        pem, created = durable.create_once(path, lambda: _new_private_pem(scheme), 0o600)
        return cls._expect(cls.from_pem(pem, record_format), scheme, path), created

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
        if self.record_format == "tc260":
            assert isinstance(self._key, Sm2PrivateKey)  # checked in __init__
            return security_data(self._key, self.kid, role, record, digest)
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
    #: who the key belongs to, for a key pinned by name (the producer directory)
    #: rather than configured for provider codes; such a key signs for any code
    name: str | None = None

    @property
    def scheme(self) -> Scheme:
        return _scheme_of(self.public_key)


class Keyring:
    """Public keys of known producers and platforms (Ed25519 or SM2), by key id."""

    def __init__(self) -> None:
        self._keys: dict[str, KnownKey] = {}

    def add(
        self, public_key: PublicKey, codes: set[str] | frozenset[str], name: str | None = None
    ) -> None:
        kid = key_id(public_key)
        known = self._keys.get(kid)
        merged = frozenset(codes) | (known.codes if known else frozenset())
        self._keys[kid] = KnownKey(public_key, merged, name or (known.name if known else None))

    def merged(self, other: Keyring) -> Keyring:
        """A new keyring with this one's keys and ``other``'s."""
        ring = Keyring()
        for source in (self, other):
            for known in source._keys.values():
                ring.add(known.public_key, known.codes, known.name)
        return ring

    def sm2_keys(self) -> list[KnownKey]:
        return [k for k in self._keys.values() if isinstance(k.public_key, Sm2PublicKey)]

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
    #: valid | invalid-content | invalid-field | unknown-key | unverifiable | absent | malformed
    status: str
    detail: str
    kid: str | None = None
    #: the form the field holds: "compact" (ours), "tc260" (SecurityData), "opaque", None
    form: str | None = None
    #: who the verifying key belongs to, when known by name (a pinned key)
    signer: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {
            "status": self.status,
            "detail": self.detail,
            "key": self.kid,
            "form": self.form,
            "signer": self.signer,
        }


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
    the content is not at hand (record recovered from the ledger). The field
    may hold our compact form, TC260 ``SecurityData``, or a party's own opaque
    data (``unverifiable``: nothing is wrong with it, nobody else can check it).
    """
    field, code = (
        ("ReservedCode1", record.content_producer)
        if role == PRODUCER
        else ("ReservedCode2", record.content_propagator)
    )
    value = record.reserved_code1 if role == PRODUCER else record.reserved_code2
    if not value:
        return Check(ABSENT, f"{field} is empty")
    tc260 = _verify_security_data(role, field, code, value, record, digest, keyring)
    if tc260 is not None:
        return tc260
    parts = value.split(".")
    prefixes = {p: s for s, p in PREFIX.items()}
    if parts[0] not in prefixes:
        return Check(
            UNVERIFIABLE,
            f"{field} holds the party's own data ({len(value)} characters), neither our "
            "signature form nor TC260 SecurityData: only its writer can check it",
            form="opaque",
        )
    if len(parts) != 4:
        return Check(
            MALFORMED,
            f"{field} starts with {parts[0]}. but is not a {parts[0]}.<kid>.<digest>.<signature> "
            "value",
            form="compact",
        )
    prefix, kid, digest_b64, sig_b64 = parts
    try:
        stated, signature = _unb64(digest_b64), _unb64(sig_b64)
    except (binascii.Error, ValueError):
        return Check(MALFORMED, f"{field} has invalid base64url", kid, "compact")
    known = keyring.get(kid)
    if known is None:
        return Check(
            UNKNOWN_KEY, f"{field} is signed by key {kid}, which is not configured", kid, "compact"
        )
    if known.scheme != prefixes[prefix]:
        return Check(
            INVALID_FIELD, f"{field} says {prefix} but key {kid} is {known.scheme}", kid, "compact"
        )
    if known.name is None and "*" not in known.codes and code not in known.codes:
        return Check(INVALID_FIELD, f"key {kid} is not registered for {code!r}", kid, "compact")
    if not _signature_ok(known.public_key, signature, message(role, record, stated)):
        return Check(INVALID_FIELD, f"{field} does not match the record's fields", kid, "compact")
    if digest is None:
        return Check(VALID, f"{field} signature valid (content not checked)", kid, "compact")
    if stated != digest:
        return Check(INVALID_CONTENT, f"content changed since {field} was signed", kid, "compact")
    return Check(
        VALID, f"{field} signature valid for these fields and this content", kid, "compact"
    )


# --- TC260-PG-202511A SecurityData --------------------------------------------
#
# The structured integrity data of the TC260 guide, as independent verifiers
# read it and producers (MiniMax, Honor) write it, inside the reserved field as
# a JSON string:
#
#   {"SecurityData":{"Type":"TC260PG","Version":1,"PubSD":[
#     {"Type":"PubKey","KeyID":K,"AlgID":"1.2.156.10197.1.501","KeyValue":"<hex>"},
#     {"Type":"DS","KeyID":K,"AlgID":"1.2.156.10197.1.501","TBSData":{"Type":"Md"},
#      "Signature":"<hex>"}, ...],
#    "Bindings":[...]}}
#
# Read leniently, as met in the wild: ``PubSD`` or ``PubSd``; TBS type ``Md``
# or ``LabelMataData``; ``KeyValue`` as the 65-byte point, 64-byte x||y, a
# compressed point, a bare 32-byte x (MiniMax pads it to 33 with 00; either y
# may be meant), or a DER SubjectPublicKeyInfo; ``Signature`` as raw r||s or
# DER. The ``Md`` message (guide appendix A.1) is the signer's fields in Annex
# E order as JSON members joined by commas: for the producer
# ``"Label":"1","ContentProducer":"…","ProduceID":"…"``; for a platform we sign
# (and accept) every field before ReservedCode2, and also accept the two
# platform fields alone. A ``Bnd`` signature covers the compact JSON of its
# ``Bindings`` entry; an entry whose ``CntSel`` is our content digest scheme
# and whose ``AlgID`` is SHA-256 binds the record to the content, which is then
# checked. Anything else (RSA, other selections) is reported unverifiable.

SM3_WITH_SM2 = "1.2.156.10197.1.501"
SHA256_OID = "2.16.840.1.101.3.4.2.1"
_LABEL_TBS = frozenset({"Md", "LabelMataData"})
_BINDING_TBS = frozenset({"Bnd", "Binding"})
_CONTENT_SELECTION = DIGEST_SCHEME.decode()
_PRODUCER_FIELDS = KEYS[:3]
_PLATFORM_FIELDS = KEYS[:6]
_PLATFORM_ONLY_FIELDS = KEYS[4:6]
#: a SecurityData value larger than this is not parsed (bounded work per record)
MAX_SECURITY_DATA_CHARS = 64 * 1024
# at most this many signatures and candidate keys per value: pure-Python SM2
# costs ~11 ms a verification, so a hostile value must not multiply them
_MAX_SIGNATURES = 4
_MAX_CANDIDATE_KEYS = 4


def tbs_message(fields: tuple[str, ...], record: Record) -> bytes:
    """The ``Md`` to-be-signed message: ``"Key":"value"`` members joined by commas."""
    values = record.as_dict()
    return ",".join(
        f"{json.dumps(k)}:{json.dumps(values[k], ensure_ascii=False)}" for k in fields
    ).encode()


def _compact(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def security_data(key: Sm2PrivateKey, kid: str, role: str, record: Record, digest: bytes) -> str:
    """A reserved-field value in the TC260 ``SecurityData`` form, signed with SM2.

    Two SM3withSM2 signatures: over the record fields (``Md``) and over a
    binding to the content digest (``Bnd``), so that other TC260 verifiers can
    check the fields and we can also tell a content change apart.
    """
    binding = {
        "Type": "Bnd",
        "ID": "1",
        "AlgID": SHA256_OID,
        "CntSel": _CONTENT_SELECTION,
        "Hash": digest.hex(),
    }
    fields = _PRODUCER_FIELDS if role == PRODUCER else _PLATFORM_FIELDS
    point = key.public_key().point
    doc = {
        "SecurityData": {
            "Type": "TC260PG",
            "Version": 1,
            "PubSD": [
                {"Type": "PubKey", "KeyID": kid, "AlgID": SM3_WITH_SM2, "KeyValue": point.hex()},
                {
                    "Type": "DS",
                    "KeyID": kid,
                    "AlgID": SM3_WITH_SM2,
                    "TBSData": {"Type": "Md"},
                    "Signature": key.sign(tbs_message(fields, record)).hex(),
                },
                {
                    "Type": "DS",
                    "KeyID": kid,
                    "AlgID": SM3_WITH_SM2,
                    "TBSData": {"Type": "Bnd", "ID": "1"},
                    "Signature": key.sign(_compact(binding)).hex(),
                },
            ],
            "Bindings": [binding],
        }
    }
    return json.dumps(doc, ensure_ascii=True, separators=(",", ":"))


def _sm2_points(key_value: Any) -> list[Sm2PublicKey]:
    """The public keys a ``KeyValue`` can denote (a bare x: both points)."""
    try:
        raw = bytes.fromhex(str(key_value))
    except ValueError:
        return []
    if len(raw) == len(_SPKI_PREFIX) + 65 and raw.startswith(_SPKI_PREFIX):
        raw = raw[len(_SPKI_PREFIX) :]
    try:
        if len(raw) == 65 and raw[0] == 4:
            return [Sm2PublicKey(raw)]
        if len(raw) == 64:
            return [Sm2PublicKey(b"\x04" + raw)]
    except SigningError:
        return []
    parities: tuple[bool, ...] = (False, True)
    if len(raw) == 33 and raw[0] in (2, 3):
        parities, raw = (raw[0] == 3,), raw[1:]
    elif len(raw) == 33 and raw[0] == 0:
        raw = raw[1:]
    if len(raw) != 32:
        return []
    x = int.from_bytes(raw, "big")
    return [p for p in (Sm2PublicKey.from_x(x, odd) for odd in parities) if p is not None]


def _der_integer(der: bytes, at: int) -> tuple[int, int] | None:
    if at + 2 > len(der) or der[at] != 0x02:
        return None
    length = der[at + 1]
    end = at + 2 + length
    if length == 0 or length > 33 or end > len(der):
        return None
    return int.from_bytes(der[at + 2 : end], "big"), end


def _signature_bytes(text: Any) -> bytes | None:
    """64-byte ``r||s`` from hex of the raw form or of DER ``SEQUENCE{r, s}``; None if neither."""
    try:
        raw = bytes.fromhex(str(text))
    except ValueError:
        return None
    if len(raw) == 64:
        return raw
    if len(raw) < 8 or raw[0] != 0x30 or raw[1] != len(raw) - 2:
        return None
    r = _der_integer(raw, 2)
    s = _der_integer(raw, r[1]) if r else None
    if r is None or s is None or s[1] != len(raw) or max(r[0], s[0]) >= 1 << 256:
        return None
    return r[0].to_bytes(32, "big") + s[0].to_bytes(32, "big")


def _member(obj: dict[str, Any], name: str) -> Any:
    """``obj[name]`` whatever its key's case (``PubSD``/``PubSd``)."""
    return next((v for k, v in obj.items() if str(k).casefold() == name.casefold()), None)


def _verify_security_data(
    role: str,
    field: str,
    code: str,
    value: str,
    record: Record,
    digest: bytes | None,
    keyring: Keyring,
) -> Check | None:
    """Check a ``SecurityData`` value; None when ``value`` is not one."""
    if not value.lstrip().startswith("{") or len(value) > MAX_SECURITY_DATA_CHARS:
        return None
    try:
        doc = json.loads(value)
    except ValueError:
        return None
    data = _member(doc, "SecurityData") if isinstance(doc, dict) else None
    if data is None:
        return None

    def bad(why: str) -> Check:
        return Check(MALFORMED, f"{field}: TC260 SecurityData {why}", form="tc260")

    if not isinstance(data, dict):
        return bad("is not a JSON object")
    entries = _member(data, "PubSD")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        return bad("has no PubSD list of objects")
    embedded: dict[str, list[Sm2PublicKey]] = {}
    for entry in entries:
        if entry.get("Type") == "PubKey":
            embedded.setdefault(str(entry.get("KeyID", "")), []).extend(
                _sm2_points(entry.get("KeyValue"))
            )
    bindings = _member(data, "Bindings")
    bindings = [b for b in bindings if isinstance(b, dict)] if isinstance(bindings, list) else []
    signatures = [e for e in entries if e.get("Type") == "DS"][:_MAX_SIGNATURES]
    if not signatures:
        return Check(UNVERIFIABLE, f"{field}: SecurityData holds no signature", form="tc260")
    unsupported: list[str] = []
    label_key: Sm2PublicKey | None = None
    label_checked = False
    content_checked = False
    for entry in signatures:
        alg, tbs = entry.get("AlgID"), _member(entry.get("TBSData") or {}, "Type")
        if alg != SM3_WITH_SM2:
            unsupported.append(f"algorithm {alg}")
            continue
        signature = _signature_bytes(entry.get("Signature"))
        if signature is None:
            return bad("has a signature that is neither hex r||s nor DER")
        kid = str(entry.get("KeyID", ""))
        # the key named by KeyID, else every key the record carries, then the
        # SM2 keys verify knows (configured or pinned) for a record without one
        candidates = embedded.get(kid) or [k for ks in embedded.values() for k in ks]
        if not candidates:
            candidates = [k.public_key for k in keyring.sm2_keys()]  # type: ignore[misc]
        candidates = candidates[:_MAX_CANDIDATE_KEYS]
        if tbs in _LABEL_TBS:
            fields = (
                [_PRODUCER_FIELDS]
                if role == PRODUCER
                else [_PLATFORM_FIELDS, _PLATFORM_ONLY_FIELDS]
            )
            messages = [tbs_message(f, record) for f in fields]
            label_checked = True
            key = next((k for k in candidates for m in messages if k.verify(signature, m)), None)  # type: ignore[union-attr]
            if key is None:
                return Check(
                    INVALID_FIELD,
                    f"{field}: the SM3withSM2 signature over the record fields does not "
                    "verify (a field changed, or the key is not the signer's)",
                    form="tc260",
                )
            label_key = label_key or key
        elif tbs in _BINDING_TBS:
            wanted = _member(entry.get("TBSData") or {}, "ID")
            binding = next(
                (b for b in bindings if wanted is None or str(b.get("ID")) == str(wanted)), None
            )
            if binding is None:
                return bad("signs a binding it does not carry")
            if not any(k.verify(signature, _compact(binding)) for k in candidates):
                return Check(
                    INVALID_FIELD,
                    f"{field}: the SM3withSM2 signature over the content binding does not verify",
                    form="tc260",
                )
            if binding.get("CntSel") == _CONTENT_SELECTION and binding.get("AlgID") == SHA256_OID:
                if digest is not None and str(binding.get("Hash", "")).lower() != digest.hex():
                    return Check(
                        INVALID_CONTENT, f"content changed since {field} was signed", form="tc260"
                    )
                content_checked = digest is not None
        else:
            unsupported.append(f"signed-data type {tbs}")
    if not label_checked:
        return Check(
            UNVERIFIABLE,
            f"{field}: TC260 SecurityData signed with {', '.join(dict.fromkeys(unsupported))}, "
            "which this verifier cannot check",
            form="tc260",
        )
    assert label_key is not None
    kid = key_id(label_key)
    known = keyring.get(kid)
    if known and known.name is None and "*" not in known.codes and code not in known.codes:
        return Check(INVALID_FIELD, f"key {kid} is not registered for {code!r}", kid, "tc260")
    whose = (
        f"the pinned key of {known.name}"
        if known and known.name
        else "a configured key"
        if known
        else "the key inside the record only (integrity, not identity)"
    )
    detail = f"{field}: TC260 SM3withSM2 signature valid, by {whose}"
    detail += "; content binding checked" if content_checked else "; content not checked"
    return Check(VALID, detail, kid, "tc260", known.name if known else None)
