"""One walk of each container per request (labelers.formats.parse_once)."""

from __future__ import annotations

import threading

import pytest

from labelers.errors import CorruptInput
from labelers.formats import jpeg, png
from labelers.formats.parse_once import parse_scope, parsed_once, shares_walks
from labelers.limits import DEFAULT_LIMITS, Limits
from tests.fuzz.mutate import SEED_BUILDERS

walked: list[object] = []


@parsed_once
def _walk(data, limits=DEFAULT_LIMITS):
    walked.append(data)
    if data[:3] in (b"bad", "bad"):
        raise CorruptInput("bad")
    return [len(data)]


@pytest.fixture(autouse=True)
def _fresh() -> None:
    walked.clear()


def test_a_scope_walks_the_same_bytes_once_and_hands_back_the_same_structure() -> None:
    data = b"x" * 100
    with parse_scope() as scope:
        first = _walk(data, DEFAULT_LIMITS)
        assert _walk(data, DEFAULT_LIMITS) is first
        assert scope.walks[f"{__name__}._walk"] == 1
    assert len(walked) == 1


def test_outside_a_scope_every_call_walks() -> None:
    data = b"x" * 100
    assert _walk(data, DEFAULT_LIMITS) is not _walk(data, DEFAULT_LIMITS)
    assert len(walked) == 2


def test_other_bytes_other_limits_and_mutable_buffers_walk_again() -> None:
    data = b"x" * 100
    with parse_scope():
        _walk(data, DEFAULT_LIMITS)
        _walk(bytes(bytearray(data)), DEFAULT_LIMITS)  # equal content, another object
        _walk(data, Limits(max_bytes=1000))  # a walk checks its limits
        buffer = bytearray(data)
        _walk(buffer, DEFAULT_LIMITS)
        buffer[0] = 0  # a bytearray can change between two stages
        _walk(buffer, DEFAULT_LIMITS)
    assert len(walked) == 5


def test_a_walker_holds_only_its_latest_structure() -> None:
    """A label's intermediate versions of a large file are not all kept alive."""
    first, second = b"a" * 100, b"b" * 100
    with parse_scope() as scope:
        _walk(first, DEFAULT_LIMITS)
        _walk(second, DEFAULT_LIMITS)
        _walk(second, DEFAULT_LIMITS)
        assert len(scope._latest) == 1
        _walk(first, DEFAULT_LIMITS)
    assert walked == [first, second, first]


def test_text_is_shared_by_value() -> None:
    """An XMP packet is decoded anew by each reader: equal text, one parse."""
    with parse_scope():
        _walk("packet " * 10)
        _walk("".join(["packet "] * 10))
    assert len(walked) == 1


def test_a_walk_that_fails_fails_again_and_is_not_remembered() -> None:
    with parse_scope():
        for _ in range(2):
            with pytest.raises(CorruptInput):
                _walk(b"bad file", DEFAULT_LIMITS)
    assert len(walked) == 2


def test_nested_scopes_join_and_each_thread_has_its_own() -> None:
    data = b"x" * 10
    seen_in_thread: list[int] = []

    @shares_walks
    def stage() -> list[int]:
        return _walk(data, DEFAULT_LIMITS)

    with parse_scope() as outer:
        first = stage()
        assert stage() is first
        thread = threading.Thread(target=lambda: seen_in_thread.append(id(stage())))
        thread.start()
        thread.join()
        assert outer.walks[f"{__name__}._walk"] == 1
    assert seen_in_thread and seen_in_thread[0] != id(first)
    assert len(walked) == 2
    stage()  # the scope is gone with its block: nothing outlives the request
    assert len(walked) == 3


@pytest.mark.parametrize(
    "media_type",
    [
        "image/jpeg",
        "image/png",
        "image/webp",
        "image/tiff",
        "image/gif",
        "audio/wav",
        "audio/flac",
        "audio/ogg",
        "video/mp4",
        "video/webm",
    ],
)
def test_verify_walks_each_container_once(media_type: str) -> None:
    """Reading the record, hashing the content, decoding the pixels or samples
    and reading the traces share one walk of the file (and one XMP parse)."""
    from detectors.files import VerifyContext, verify_file
    from detectors.lookup import NoLookup
    from labelers.formats import get_handler
    from tests.fuzz.mutate import RECORD

    data = get_handler(media_type).write_record(SEED_BUILDERS[media_type](), RECORD)
    with parse_scope() as scope:
        verify_file(data, VerifyContext(NoLookup()), check_visible=True)
    assert scope.walks, "the container's walker is not shared (parsed_once)"
    assert set(scope.walks.values()) == {1}, dict(scope.walks)


def test_a_re_encoded_image_keeps_the_segments_the_walker_found() -> None:
    """The re-encode carries APPn/COM segments from the one walk (not a second walker)."""
    from labelers.imaging import open_raster, save_raster

    source = SEED_BUILDERS["image/jpeg"]()
    app5 = b"\xff\xe5" + (2 + 9).to_bytes(2, "big") + b"vendor-x\0"
    source = source[:2] + app5 + source[2:]
    out = save_raster(open_raster(source, "image/jpeg"))
    assert app5 in out
    png_source = SEED_BUILDERS["image/png"]()
    chunks = png.ancillary_chunks(png_source)
    assert png.splice_ancillary(png_source, chunks).startswith(png.SIGNATURE)
    assert jpeg.segments_to_carry(source)[0] == app5
