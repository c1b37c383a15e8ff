"""Constants and helpers shared by tests (importable, unlike conftest)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from labelers.errors import LimitExceeded

PRODUCER = "0011911100007109120X0010001"
PLATFORM = "0011911100007109120X0020001"

KEYS = {
    "keys": [
        {
            "name": "generator",
            "key": "gen-key",
            "producer": PRODUCER,
            "permissions": ["label", "verify", "read_records"],
        },
        {
            "name": "trusted-generator",
            "key": "omit-key",
            "producer": PRODUCER,
            "permissions": ["label", "verify", "read_records", "omit_explicit"],
        },
        {
            "name": "platform",
            "key": "platform-key",
            "platform": PLATFORM,
            "permissions": ["verify", "propagate", "read_records"],
        },
        {"name": "reader", "key": "verify-key", "permissions": ["verify"]},
    ]
}


def auth(key: str = "gen-key") -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# the TC260 namespace is not built into exiftool: a user-defined table names the tag
EXIFTOOL_CONFIG = """\
%Image::ExifTool::UserDefined = (
    'Image::ExifTool::XMP::Main' => {
        TC260 => { SubDirectory => { TagTable => 'Image::ExifTool::UserDefined::TC260' } },
    },
);
%Image::ExifTool::UserDefined::TC260 = (
    GROUPS => { 0 => 'XMP', 1 => 'XMP-TC260', 2 => 'Image' },
    NAMESPACE => { 'TC260' => 'http://www.tc260.org.cn/ns/AIGC/1.0/' },
    WRITABLE => 'string',
    AIGC => { },
);
1;
"""


@contextmanager
def raises_limit(limit: str) -> Iterator[pytest.ExceptionInfo[LimitExceeded]]:
    """Expect a LimitExceeded for the Limits field ``limit``, carrying the limit's
    value and, where the input was measured, an amount over it."""
    with pytest.raises(LimitExceeded) as err:
        yield err
    exc = err.value
    assert exc.limit == limit, f"expected the {limit} limit, got {exc.limit}: {exc.detail}"
    assert exc.value is not None, exc.detail
    assert exc.amount is None or exc.amount > exc.value, (exc.amount, exc.value)
    assert "AIGC_" not in exc.detail, "library messages do not name settings"
