"""API keys: bearer tokens mapped to an identity and its permissions.

Keys come from ``AIGC_API_KEYS_FILE`` (a JSON file) or ``AIGC_API_KEYS`` (the
same JSON inline)::

    {"keys": [{"name": "gen-backend", "key_sha256": "<hex>",   # or "key": "<plain>"
               "producer": "<27-char provider code>", "platform": "<code>",
               "permissions": ["label", "verify", "propagate", "read_records",
                               "omit_explicit"]}]}

With no keys configured the service runs in development mode: it generates one
key with every permission, stores it under the data directory, prints it once
when it is created, and labels with a producer code that is visibly a test
code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from labelers import durable
from labelers.record import provider_code_problems

log = logging.getLogger("aigc.auth")

PERMISSIONS = frozenset(
    {"label", "verify", "propagate", "read_records", "read_all_records", "omit_explicit"}
)
#: Development identities: structurally valid provider codes that say TESTONLY.
DEV_PRODUCER = "001100000000TESTONLY0010000"
DEV_PLATFORM = "001100000000TESTONLY0020000"


class AuthConfigError(Exception):
    """The configured key file is unusable: the service refuses to start."""


@dataclass(frozen=True)
class Identity:
    name: str
    producer: str | None
    platform: str | None
    permissions: frozenset[str]
    development: bool = False

    def can(self, permission: str) -> bool:
        if permission == "read_records" and "read_all_records" in self.permissions:
            return True  # reading every record includes reading one's own
        return permission in self.permissions


class KeyStore:
    def __init__(self, entries: dict[str, Identity], development: bool) -> None:
        self._by_hash = entries  # sha256 hex of the key -> identity
        self.development = development

    def identities(self) -> list[Identity]:
        return list(self._by_hash.values())

    def codes(self) -> set[str]:
        """Every producer and platform code our identities act as."""
        return {c for i in self.identities() for c in (i.producer, i.platform) if c}

    def identify(self, presented: str) -> Identity | None:
        digest = hashlib.sha256(presented.encode()).hexdigest()
        # constant-time over every configured key: no early exit on a match
        found = None
        for known, identity in self._by_hash.items():
            if hmac.compare_digest(known, digest):
                found = identity
        return found


def load_keys(keys_file: Path | None, keys_inline: str | None, data_dir: Path) -> KeyStore:
    if keys_file is not None:
        try:
            text = keys_file.read_text()
        except OSError as exc:
            raise AuthConfigError(f"AIGC_API_KEYS_FILE {keys_file}: {exc.strerror}") from exc
        return KeyStore(_parse(text, str(keys_file)), development=False)
    if keys_inline:
        return KeyStore(_parse(keys_inline, "AIGC_API_KEYS"), development=False)
    key = _development_key(data_dir)
    identity = Identity(
        name="development",
        producer=DEV_PRODUCER,
        platform=DEV_PLATFORM,
        permissions=PERMISSIONS,
        development=True,
    )
    return KeyStore({hashlib.sha256(key.encode()).hexdigest(): identity}, development=True)


def _parse(text: str, where: str) -> dict[str, Identity]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AuthConfigError(f"{where} is not valid JSON: {exc}") from exc
    items = doc.get("keys") if isinstance(doc, dict) else doc
    if not isinstance(items, list) or not items:
        raise AuthConfigError(f'{where} must hold {{"keys": [...]}} with at least one key')
    out: dict[str, Identity] = {}
    for i, item in enumerate(items):
        label = f"{where} key #{i + 1}"
        if not isinstance(item, dict):
            raise AuthConfigError(f"{label} must be an object")
        if "key_sha256" in item:
            digest = str(item["key_sha256"]).lower()
        elif "key" in item:
            digest = hashlib.sha256(str(item["key"]).encode()).hexdigest()
        else:
            raise AuthConfigError(f'{label} needs "key" or "key_sha256"')
        perms = frozenset(item.get("permissions", ["label", "verify", "read_records"]))
        unknown = perms - PERMISSIONS
        if unknown:
            raise AuthConfigError(f"{label}: unknown permissions {sorted(unknown)}")
        producer, platform = item.get("producer"), item.get("platform")
        for code in (producer, platform):
            if code is not None and provider_code_problems(code):
                raise AuthConfigError(f"{label}: " + "; ".join(provider_code_problems(code)))
        if "label" in perms and not producer:
            raise AuthConfigError(f'{label} has the "label" permission but no "producer" code')
        if "propagate" in perms and not platform:
            raise AuthConfigError(f'{label} has "propagate" but no "platform" code')
        out[digest] = Identity(
            name=str(item.get("name", f"key-{i + 1}")),
            producer=producer,
            platform=platform,
            permissions=perms,
        )
    return out


def _development_key(data_dir: Path) -> str:
    """The development key, created once (under a lock: workers start together)."""
    path = data_dir / "dev-api-key"
    made, created = durable.create_once(
        path, lambda: f"aigc-dev-{secrets.token_urlsafe(24)}\n".encode(), 0o600
    )
    key = made.decode().strip()
    if not created:
        log.warning(
            "DEVELOPMENT MODE: no API keys configured; using the development key in %s "
            "(producer code %s is a test code)",
            path,
            DEV_PRODUCER,
        )
        return key
    print(
        "\n  DEVELOPMENT MODE: no AIGC_API_KEYS configured.\n"
        f"  Generated API key (shown once, stored in {path}):\n\n"
        f"    Authorization: Bearer {key}\n\n"
        f"  Labels carry the test producer code {DEV_PRODUCER}.\n",
        flush=True,
    )
    return key
