"""Plain text: the handler with no record carrier (its record lives in the ledger)."""

from __future__ import annotations

import pytest

from labelers.errors import LimitExceeded, UnsupportedMedia
from labelers.formats import Capability, content_digest, get_handler, sniff
from labelers.limits import Limits
from labelers.record import Record

TEXT = b"The tide turns at noon; the boats come in before it.\n"


def contract_sample() -> bytes:
    return TEXT


def test_plain_text_is_what_is_left_of_utf8_after_markup() -> None:
    assert sniff(TEXT) == "text/plain"
    assert sniff("\ufeff价格上涨了。".encode()) == "text/plain"
    assert sniff(b"# Title\n\n- a list\n") == "text/markdown"


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"abc\x00def", "unrecognised binary file type"),
        (b"\xff\xfe\x00a", "unrecognised file type"),
        (b"", "the file is empty"),
    ],
)
def test_what_is_not_text_is_named(data: bytes, why: str) -> None:
    with pytest.raises(UnsupportedMedia, match=why):
        sniff(data)


def test_plain_text_offers_no_record_and_says_so() -> None:
    handler = get_handler("text/plain")
    assert Capability.RECORD not in handler.capabilities
    record = Record.first_write("0011911100007109120X0010001", "01JPLAINTEXTXXXXXXXXXXXXX1")
    with pytest.raises(UnsupportedMedia, match="no metadata carrier"):
        handler.write_record(TEXT, record)


def test_the_digest_is_over_the_text_and_bounded() -> None:
    assert content_digest(TEXT) == get_handler("text/plain").content_digest(TEXT)
    with pytest.raises(LimitExceeded):
        content_digest(TEXT, Limits(max_bytes=10))
