"""Images end to end through the real app: POST /v1/label, then POST /v1/verify (multipart).

Independent readers check what the service claims: exiftool for the XMP
record, a fresh Pillow decode for pixels, size and frames, and
``measure_ink_height`` (a diff against the original) for the visible label.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import shutil
import struct
import subprocess
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageSequence
from PIL.PngImagePlugin import PngInfo

from app.settings import Settings
from labelers.record import Record
from labelers.visible.image import measure_ink_height
from tests.imagery import photo
from tests.support import EXIFTOOL_CONFIG, KEYS, PRODUCER, auth

OTHER_PRODUCER = "0011911100007109120X0010009"
CHECK_DIR = Path("/tmp/api-check")


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator[TestClient]:
    """One app for the module: building one (keys, ledger, credentials) costs ~0.4 s."""
    from app.main import create_app

    settings = Settings(data_dir=tmp_path_factory.mktemp("var"), api_keys=json.dumps(KEYS))
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def encode(img: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **params)
    return out.getvalue()


def animated_gif(width: int = 320, height: int = 240, frames: int = 3) -> bytes:
    shots = [photo(width, height, seed).quantize(64) for seed in range(frames)]
    return encode(shots[0], "GIF", save_all=True, append_images=shots[1:], duration=120, loop=0)


FORMATS = {
    "jpeg": ("x.jpg", lambda: encode(photo(480, 360), "JPEG", quality=90)),
    "png": ("x.png", lambda: encode(photo(480, 360), "PNG")),
    "webp": ("x.webp", lambda: encode(photo(480, 360), "WEBP", quality=90)),
    "tiff": ("x.tif", lambda: encode(photo(480, 360), "TIFF")),
    "gif": ("x.gif", lambda: encode(photo(480, 360).quantize(128), "GIF")),
    "gif-animated": ("x.gif", animated_gif),
    "avif": ("x.avif", lambda: encode(photo(480, 360), "AVIF", quality=80)),
}
# each fixture is built once per run (the bytes are immutable)
FORMATS = {kind: (name, functools.cache(make)) for kind, (name, make) in FORMATS.items()}
EVERY_FORMAT = pytest.mark.parametrize("kind", list(FORMATS))


def label(client: TestClient, data: bytes, name: str = "x.jpg", key: str = "gen-key", **form):
    resp = client.post(
        "/v1/label",
        files={"file": (name, data)},
        data={k: str(v).lower() if isinstance(v, bool) else v for k, v in form.items()},
        headers=auth(key),
    )
    assert resp.status_code == 200, resp.text
    return resp


def verify(client: TestClient, data: bytes, name: str = "x.jpg", **form) -> dict:
    resp = client.post("/v1/verify", files={"file": (name, data)}, data=form, headers=auth())
    assert resp.status_code == 200, resp.text
    return resp.json()


def header_record(resp) -> dict[str, str]:
    return Record.parse(resp.headers["AIGC-Record"]).as_dict()


def frames(data: bytes) -> list[np.ndarray]:
    """Every frame, freshly decoded, as RGBA arrays."""
    with Image.open(io.BytesIO(data)) as img:
        return [np.asarray(f.convert("RGBA")) for f in ImageSequence.Iterator(img)]


def frame_count_and_size(data: bytes) -> tuple[int, tuple[int, int]]:
    with Image.open(io.BytesIO(data)) as img:
        return getattr(img, "n_frames", 1), img.size


@pytest.fixture(scope="module")
def exiftool_config(tmp_path_factory) -> Path:
    if shutil.which("exiftool") is None:
        pytest.skip("exiftool not installed")
    path = tmp_path_factory.mktemp("exiftool") / "tc260.config"
    path.write_text(EXIFTOOL_CONFIG)
    return path


def exiftool_aigc(data: bytes, config: Path) -> str | None:
    proc = subprocess.run(
        ["exiftool", "-config", str(config), "-j", "-XMP-TC260:AIGC", "-"],
        input=data,
        capture_output=True,
        check=True,
    )
    return json.loads(proc.stdout)[0].get("AIGC")


# --------------------------------------------------------- label then verify
@EVERY_FORMAT
def test_label_then_verify_is_confirmed_trusted_and_readable_by_exiftool(
    client: TestClient, kind: str, exiftool_config: Path
) -> None:
    name, make = FORMATS[kind]
    original = make()
    resp = label(client, original, name)
    labelled = resp.content
    record = header_record(resp)
    assert record["ContentProducer"] == PRODUCER and record["ReservedCode1"]
    assert resp.headers["AIGC-C2PA"] == "signed"

    report = verify(client, labelled, name)
    assert report["classification"] == "confirmed", report
    assert report["record"] == record
    assert report["integrity"]["c2pa"]["state"] == "Trusted"
    assert report["integrity"]["c2pa"]["content_altered"] is False
    assert not [f for f in report["findings"] if f["severity"] == "error"], report["findings"]

    # an independent reader finds the same record in the XMP carrier
    read_back = exiftool_aigc(labelled, exiftool_config)
    assert read_back is not None, f"exiftool found no XMP-TC260:AIGC in the {kind} output"
    assert Record.parse(read_back).as_dict() == record

    # the output is still the same picture: opens, same size and frame count
    assert frame_count_and_size(labelled) == frame_count_and_size(original)
    assert resp.headers["content-type"] == report["media_type"]


# ------------------------------------------------------- metadata-only runs
@EVERY_FORMAT
@pytest.mark.parametrize("c2pa", [False, True], ids=["record-only", "record+c2pa"])
def test_metadata_only_labelling_leaves_every_pixel_of_every_frame(
    client: TestClient, kind: str, c2pa: bool
) -> None:
    name, make = FORMATS[kind]
    original = make()
    resp = label(
        client,
        original,
        name,
        key="omit-key",
        explicit="none",
        omit_reason="user agreement 42",
        watermark=False,
        c2pa=c2pa,
    )
    assert resp.headers["AIGC-Explicit"] == "none"
    before, after = frames(original), frames(resp.content)
    assert len(after) == len(before)
    for i, (a, b) in enumerate(zip(before, after, strict=True)):
        assert np.array_equal(a, b), f"{kind} frame {i} pixels changed by a metadata-only run"
    report = verify(client, resp.content, name)
    assert report["classification"] == "confirmed"
    assert report["record"] == header_record(resp)
    if c2pa:
        assert report["integrity"]["c2pa"]["state"] == "Trusted"


# ------------------------------------------------------------ visible label
@pytest.mark.parametrize(
    "size", [(480, 720), (720, 480), (200, 150)], ids=["portrait", "landscape", "small"]
)
def test_visible_label_ink_is_at_least_five_percent_of_shortest_side(
    client: TestClient, size: tuple[int, int]
) -> None:
    img = photo(*size, seed=3)
    resp = label(client, encode(img, "PNG"), "x.png", watermark=False)
    assert resp.headers["AIGC-Explicit"] == "bottom-right"
    with Image.open(io.BytesIO(resp.content)) as out:
        labelled = out.convert("RGB")
    ink = measure_ink_height(labelled, img)
    assert ink >= 0.05 * min(size), f"ink {ink} px on {size}"


def test_labelled_jpeg_rendered_for_a_look(client: TestClient) -> None:
    """Writes /tmp/api-check/labelled-jpeg.png; the label must be legible to a person."""
    resp = label(client, encode(photo(1024, 768, seed=5), "JPEG", quality=90))
    CHECK_DIR.mkdir(parents=True, exist_ok=True)
    with Image.open(io.BytesIO(resp.content)) as out:
        out.save(CHECK_DIR / "labelled-jpeg.png")
        assert out.size == (1024, 768)


# ------------------------------------------------------------------ relabel
@EVERY_FORMAT
def test_relabelling_a_labelled_file_keeps_exactly_one_record(client: TestClient, kind) -> None:
    name, make = FORMATS[kind]
    first = label(client, make(), name)
    second = label(client, first.content, name)
    report = verify(client, second.content, name)
    assert report["classification"] == "confirmed"
    assert report["integrity"]["c2pa"]["state"] == "Trusted"
    assert report["record"] == header_record(second) != header_record(first)
    assert not [f for f in report["findings"] if f["code"] == "several-records"]
    in_metadata = {json.dumps(r["record"]) for r in report["records"] if r["source"] == "metadata"}
    assert in_metadata == {json.dumps(header_record(second))}


def test_relabelling_records_the_watermark_the_file_keeps(client: TestClient) -> None:
    """The relabelled file keeps the first label's mark, so its ledger row names that key."""
    first = label(client, encode(photo(640, 480, seed=21), "JPEG", quality=92))
    second = label(client, first.content)
    entries = [
        client.get(f"/v1/records/{resp.headers['AIGC-Produce-ID']}", headers=auth()).json()
        for resp in (first, second)
    ]
    assert second.headers["AIGC-Watermark"].startswith("kept")
    assert entries[1]["watermark_key"] == entries[0]["watermark_key"]
    assert entries[1]["produce_id"] != entries[0]["produce_id"]


# --------------------------------------------------------------- bad uploads
def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _bomb_png() -> bytes:
    """A tiny PNG whose header claims 100000x100000 pixels."""
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 4096))
        + _png_chunk(b"IEND", b"")
    )


def _small_jpeg() -> bytes:
    return encode(photo(320, 240, seed=9), "JPEG", quality=90)


def _small_png() -> bytes:
    return encode(photo(320, 240, seed=9), "PNG")


BAD_UPLOADS = {
    # name: (file name, bytes factory, content type, status, words the detail must name)
    "garbage-named-jpg": (
        "x.jpg",
        lambda: np.random.default_rng(1).bytes(5000),
        "image/jpeg",
        415,
        "unrecognised",
    ),
    "truncated-jpeg": ("x.jpg", lambda: _small_jpeg()[:3000], "image/jpeg", 422, "JPEG"),
    "truncated-png": ("x.png", lambda: _small_png()[:3000], "image/png", 422, "PNG"),
    "empty": ("x.jpg", lambda: b"", "image/jpeg", 422, "empty"),
    "png-bomb-header": ("x.png", _bomb_png, "image/png", 413, "AIGC_MAX_PIXELS"),
    "random-bytes": (
        "x.bin",
        lambda: np.random.default_rng(2).bytes(3000),
        "application/octet-stream",
        415,
        "unrecognised",
    ),
    "jpeg-magic-then-noise": (
        "x.jpg",
        lambda: b"\xff\xd8\xff" + np.random.default_rng(3).bytes(3000),
        None,
        422,
        "JPEG",
    ),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
@pytest.mark.parametrize("endpoint", ["/v1/label", "/v1/verify"])
def test_bad_upload_is_a_4xx_problem_naming_it(client: TestClient, case: str, endpoint) -> None:
    name, make, ctype, status, words = BAD_UPLOADS[case]
    upload = (name, make(), ctype) if ctype else (name, make())
    resp = client.post(endpoint, files={"file": upload}, headers=auth())
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    problem = resp.json()
    assert problem["status"] == status
    assert words.lower() in problem["detail"].lower(), problem["detail"]


def _zip_tail() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("payload.txt", "hello from the zip half")
    return out.getvalue()


@pytest.mark.parametrize(
    "tail",
    [
        _zip_tail(),
        b"%PDF-1.4\n1 0 obj<< /Type /Catalog >>endobj\ntrailer<< /Root 1 0 R >>\n%%EOF\n",
    ],
    ids=["zip", "pdf"],
)
def test_polyglot_jpeg_is_labelled_as_jpeg(client: TestClient, tail: bytes) -> None:
    original = encode(photo(480, 360, seed=4), "JPEG", quality=90) + tail
    resp = label(client, original, "x.jpg")
    assert resp.headers["content-type"] == "image/jpeg"
    assert frame_count_and_size(resp.content) == (1, (480, 360))
    report = verify(client, resp.content)
    assert report["media_type"] == "image/jpeg"
    assert report["classification"] == "confirmed"
    assert report["record"] == header_record(resp)


def test_png_sent_as_jpeg_is_sniffed_and_returned_as_png(client: TestClient) -> None:
    resp = client.post(
        "/v1/label",
        files={"file": ("x.jpg", encode(photo(320, 240), "PNG"), "image/jpeg")},
        headers=auth(),
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/png"
    assert resp.content.startswith(b"\x89PNG\r\n\x1a\n")
    report = verify(client, resp.content, "x.jpg")
    assert report["media_type"] == "image/png" and report["classification"] == "confirmed"


# ------------------------------------------------- unlabelled uploads judged
def _png_with_text(**chunks: str) -> bytes:
    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    return encode(photo(320, 240, seed=6), "PNG", pnginfo=info)


def _jpeg_with_exif(tags: dict[int, str | bytes], exif_ifd: dict[int, bytes] | None = None):
    exif = Image.Exif()
    for tag, value in tags.items():
        exif[tag] = value
    for tag, value in (exif_ifd or {}).items():
        exif.get_ifd(0x8769)[tag] = value
    return encode(photo(320, 240, seed=7), "JPEG", quality=90, exif=exif.tobytes())


def _trace_kinds(report: dict) -> set[str]:
    return {e["carrier"] for e in report["evidence"] if e["kind"] == "generator-trace"}


def test_a1111_parameters_chunk_is_suspected(client: TestClient) -> None:
    data = _png_with_text(
        parameters="a lighthouse at dusk\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1"
    )
    report = verify(client, data, "x.png")
    assert report["classification"] == "suspected"
    assert "png:tEXt:parameters" in _trace_kinds(report)
    assert report["record"] is None


def test_comfyui_prompt_chunk_is_suspected(client: TestClient) -> None:
    graph = {"3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20}}}
    report = verify(client, _png_with_text(prompt=json.dumps(graph)), "x.png")
    assert report["classification"] == "suspected"
    assert "png:tEXt:prompt" in _trace_kinds(report)


def test_midjourney_exif_software_is_suspected(client: TestClient) -> None:
    report = verify(client, _jpeg_with_exif({0x0131: "Midjourney"}))
    assert report["classification"] == "suspected"
    assert "exif:Software" in _trace_kinds(report)


def test_plain_photo_is_none_and_declared_one_is_possible(client: TestClient) -> None:
    data = _jpeg_with_exif({0x0131: "Camera Firmware 1.2", 0x010F: "ACME"})
    report = verify(client, data)
    assert report["classification"] == "none"
    assert report["evidence"] == [] and report["record"] is None
    declared = verify(client, data, declared_ai="true")
    assert declared["classification"] == "possible"
    assert declared["rule"].startswith("Art. 6(2)")


def test_record_in_exif_usercomment_from_another_tool_is_confirmed(client: TestClient) -> None:
    theirs = Record.first_write(OTHER_PRODUCER, "THEIR-ID-0001")
    comment = b"ASCII\0\0\0" + theirs.dumps().encode()
    report = verify(client, _jpeg_with_exif({}, {0x9286: comment}))
    assert report["classification"] == "confirmed"
    assert report["record"] == theirs.as_dict()
    assert [r["carrier"] for r in report["records"]] == ["exif:UserComment"]


# ------------------------------------------------------- watermark survival
def test_labelled_file_is_in_the_ledger(client: TestClient) -> None:
    resp = label(client, FORMATS["png"][1](), "x.png")
    entry = client.get(f"/v1/records/{resp.headers['AIGC-Produce-ID']}", headers=auth())
    assert entry.status_code == 200, entry.text
    assert entry.json()["record"] == header_record(resp)
    assert entry.json()["media_type"] == "image/png"
    assert entry.json()["content_sha256"] == hashlib.sha256(resp.content).hexdigest()


def test_watermark_survives_metadata_stripping_reencode(client: TestClient) -> None:
    resp = label(client, encode(photo(1024, 768, seed=8), "JPEG", quality=92))
    assert resp.headers["AIGC-Watermark"] == "embedded"
    with Image.open(io.BytesIO(resp.content)) as img:
        pixels = np.asarray(img.convert("RGB"))
    # a fresh image carries no info dict: nothing of the metadata can ride along
    stripped = encode(Image.fromarray(pixels), "JPEG", quality=85)
    report = verify(client, stripped)
    assert report["classification"] == "confirmed", report
    assert {e["kind"] for e in report["evidence"]} >= {"watermark"}
    assert [r["source"] for r in report["records"]] == ["ledger"]
    assert report["record"] == header_record(resp)


def test_small_image_skips_the_watermark_and_says_why(client: TestClient) -> None:
    small = label(client, encode(photo(200, 150), "PNG"), "s.png")
    assert small.headers["aigc-watermark"].startswith("skipped")
    assert "256 px" in small.headers["aigc-watermark"]
    assert (
        label(client, encode(photo(640, 480), "PNG"), "b.png").headers["aigc-watermark"]
        == "embedded"
    )
