"""The project's own exception types.

Library code (labelers/, detectors/) raises only these; app/ maps each kind to
an HTTP problem status, the CLI to a report line. Messages are written for the
person who sent the input: they name the problem and, where useful, the fix.
"""

from __future__ import annotations


class AigcError(Exception):
    """Base of every error the labelling library raises on purpose."""

    #: short machine-readable kind, used as the problem "type" suffix
    kind = "aigc-error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UnsupportedMedia(AigcError):
    """The bytes are not a format the service can label or read."""

    kind = "unsupported-media"


class CorruptInput(AigcError):
    """The bytes claim a supported format but cannot be parsed."""

    kind = "corrupt-input"


class LimitExceeded(AigcError):
    """The input is larger than a limit (size, pixels, pages, ratio).

    ``limit`` names the :class:`~labelers.limits.Limits` field that was passed,
    ``value`` is its value and ``amount`` what the input measured; all three are
    None for a bound of the format itself (a RIFF file's 4 GiB), which no
    setting can raise.
    """

    kind = "limit-exceeded"

    def __init__(
        self,
        detail: str,
        *,
        limit: str | None = None,
        value: float | None = None,
        amount: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.limit, self.value, self.amount = limit, value, amount


class InvalidRecord(AigcError):
    """A GB 45438 Annex E record, or one of its fields, breaks the rules."""

    kind = "invalid-record"


class InvalidWording(AigcError):
    """An explicit-label wording lacks the AI element or the generation element."""

    kind = "invalid-wording"


class InvalidOption(AigcError):
    """A labelling option is out of range or does not apply to this content."""

    kind = "invalid-option"


class EncryptedInput(AigcError):
    """The document is encrypted and cannot be opened without a password."""

    kind = "encrypted-input"


class SigningError(AigcError):
    """Signing material is missing or unusable (C2PA chain, record signing key)."""

    kind = "signing-error"


class ServiceBusy(AigcError):
    """The process is already decoding as much as it may; the caller should retry later."""

    kind = "busy"

    def __init__(self, detail: str, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
