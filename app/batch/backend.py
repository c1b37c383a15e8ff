"""What a worker asks of a backend (label, verify, propagate, ledger look-ups),
and the identity a run labels as."""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from app.batch.options import REPORT_VERSION, BatchError, BatchOptions


def _media_type(data: bytes) -> str | None:
    from labelers.errors import AigcError
    from labelers.formats import sniff

    try:
        return sniff(data)
    except AigcError:
        return None


class BackendError(Exception):
    """A file the backend refused or could not handle (server mode: a problem response)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@dataclass
class Labelled:
    data: bytes
    media_type: str
    produce_id: str
    explicit: str
    watermark: str
    c2pa: str
    commit: Callable[[], str | None]  # ledger insert (library mode); returns a note

    def report_fields(self, note: str | None) -> dict[str, str]:
        """What the JSONL report says of this file (tree and stdin runs alike)."""
        fields = {
            "media_type": self.media_type,
            "produce_id": self.produce_id,
            "outcome": "labelled",
            "explicit": self.explicit,
            "watermark": self.watermark,
            "c2pa": self.c2pa,
        }
        if note:
            fields["note"] = note
        return fields


@dataclass
class Propagated:
    data: bytes | None  # None: nothing to write (classification none)
    media_type: str
    produce_id: str | None
    propagate_id: str | None
    classification: str
    created: bool
    explicit: str
    c2pa: str
    commit: Callable[[], str | None]


class Backend:
    """What a worker needs from the library or from the service."""

    salt: bytes
    limits: Any
    max_bytes: int

    def label(self, data: bytes, produce_id: str, name: str) -> Labelled:
        raise NotImplementedError

    def verify(self, data: bytes, name: str) -> dict[str, Any]:
        raise NotImplementedError

    def propagate(self, data: bytes, propagate_id: str, name: str) -> Propagated:
        raise NotImplementedError

    def known_produce_id(self, produce_id: str) -> bool:
        """Whether the ledger holds ``produce_id`` (server mode: True if it cannot tell)."""
        raise NotImplementedError

    def issued_to_us(self, data: bytes, sha256: str) -> str | None:
        """In-place: the ProduceID if ``data`` is already a label we issued."""
        raise NotImplementedError

    def propagated_by_us(self, data: bytes) -> str | None:
        """In-place propagate: the PropagateID if our platform already wrote back."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections (before a fork: they must not be shared with workers)."""


def header(options: BatchOptions, identity: dict[str, Any], salt: bytes) -> dict[str, Any]:
    """The report header line for this run."""
    opts = {k: v for k, v in asdict(options).items() if k not in ("api_key",)}
    return {
        "type": "header",
        "version": REPORT_VERSION,
        "command": options.command,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cwd": os.getcwd(),
        "run": secrets.token_hex(8),
        "identity": identity,
        "id_salt": salt.hex(),
        "options": opts,
    }


#: Art. 6 class -> the Label a platform writes when it creates the record
_PERMISSION = {"label": "label", "verify": "verify", "propagate": "propagate"}


def pick_identity(keys: Any, options: BatchOptions) -> Any:
    """The API-key identity a library-mode run acts as (same rules as the service).

    ``--key-name`` picks one by name; without it the only identity allowed to
    do the command is used (development mode has exactly one).
    """
    identities = keys.identities()
    permission = _PERMISSION[options.command]
    if options.key_name is not None:
        named = [i for i in identities if i.name == options.key_name]
        if not named:
            known = ", ".join(sorted(i.name for i in identities))
            raise BatchError(f"no API key named {options.key_name!r} (configured: {known})")
        identity = named[0]
        if not identity.can(permission):
            raise BatchError(f"API key {identity.name!r} lacks the {permission!r} permission")
    else:
        able = [i for i in identities if i.can(permission)]
        if not able:
            raise BatchError(f"no configured API key has the {permission!r} permission")
        if len(able) > 1:
            names = ", ".join(sorted(i.name for i in able))
            raise BatchError(
                f"several API keys may {permission} ({names}): pick one with --key-name"
            )
        identity = able[0]
    if (
        options.command == "label"
        and options.explicit == "none"
        and not identity.can("omit_explicit")
    ):
        raise BatchError(
            f"--explicit none needs the 'omit_explicit' permission, which API key "
            f"{identity.name!r} lacks (Measures Art. 9: only under a user agreement, logged)"
        )
    return identity


def build_state() -> Any:
    """``State.build`` from the environment; its one-time notices go to stderr, not stdout."""
    from app.settings import from_env
    from app.state import State

    with contextlib.redirect_stdout(sys.stderr):  # stdout may be carrying a labelled file
        return State.build(from_env(), oneshot=True)
