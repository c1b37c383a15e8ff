"""Fixtures for the image container tests: photographic test images, a record,
an existing XMP packet from "another tool", and exiftool as the independent reader."""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageSequence

from labelers.record import Record
from tests.support import EXIFTOOL_CONFIG

PRODUCER = "0011911100007109120X0010001"


# what an editor left in the file before we label it
OTHER_XMP = b"""<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="Some Editor 3.1">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmp:CreatorTool="PhotoEditor 1.0">
   <dc:title><rdf:Alt><rdf:li xml:lang="x-default">Sunset test</rdf:li></rdf:Alt></dc:title>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""


@pytest.fixture
def record() -> Record:
    return Record.first_write(PRODUCER, "01JABCDEFGHJKMNPQRSTVWXYZ0")


@pytest.fixture
def other_record() -> Record:
    return Record.first_write(PRODUCER, "01JZZZZZZZZZZZZZZZZZZZZZZ9").with_fields(
        content_propagator="0011911100007109120X0020001", propagate_id="PLATFORM-42"
    )


def photo_array(width: int = 160, height: int = 120, seed: int = 0) -> np.ndarray:
    """Photographic-like RGB content: smooth gradients, a soft shape, fine texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 40 + 180 * x / width
    g = 60 + 150 * y / height
    blob = np.exp(-(((x - width * 0.6) ** 2 + (y - height * 0.4) ** 2) / (0.05 * width * height)))
    b = 90 + 120 * blob
    texture = rng.normal(0, 6, (height, width)).astype(np.float32)
    rgb = np.stack([r + texture, g + texture * 0.8, b + texture * 0.6], axis=-1)
    return np.clip(rgb, 0, 255).astype(np.uint8)


@pytest.fixture
def photo() -> Callable[..., Image.Image]:
    def make(width: int = 160, height: int = 120, seed: int = 0) -> Image.Image:
        return Image.fromarray(photo_array(width, height, seed))

    return make


@pytest.fixture(scope="session")
def icc_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.fixture
def exif_with_orientation() -> Callable[..., Image.Exif]:
    def make(user_comment: bytes | None = None, description: str | None = None) -> Image.Exif:
        exif = Image.Exif()
        exif[0x0112] = 6  # Orientation: rotate 90 CW
        exif[0x0131] = "DiffusionTool 2.0"
        exif[0x010F] = "CameraCo"
        if description is not None:
            exif[0x010E] = description
        if user_comment is not None:
            exif.get_ifd(0x8769)[0x9286] = user_comment
        return exif

    return make


@pytest.fixture(scope="session")
def exiftool(tmp_path_factory: pytest.TempPathFactory) -> Callable[[bytes], dict]:
    """exiftool's view of a file's bytes: a dict of "Group:Tag" -> value."""
    base = tmp_path_factory.mktemp("exiftool")
    config = base / "tc260.config"
    config.write_text(EXIFTOOL_CONFIG)
    counter = iter(range(1_000_000))

    def run(data: bytes, suffix: str = ".bin") -> dict:
        path = base / f"f{next(counter)}{suffix}"
        path.write_bytes(data)
        out = subprocess.run(
            ["exiftool", "-config", str(config), "-j", "-G1", "-a", "-n", "-struct", str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(out.stdout)[0]

    return run


@pytest.fixture(scope="session")
def exiftool_xmp(tmp_path_factory: pytest.TempPathFactory) -> Callable[[bytes], bytes]:
    """The raw XMP packet exiftool extracts from a file (``exiftool -xmp -b``)."""
    base = tmp_path_factory.mktemp("exiftool-xmp")
    counter = iter(range(1_000_000))

    def run(data: bytes) -> bytes:
        path = base / f"f{next(counter)}"
        path.write_bytes(data)
        return subprocess.run(
            ["exiftool", "-xmp", "-b", str(path)], capture_output=True, check=True
        ).stdout

    return run


def frames(data: bytes) -> list[bytes]:
    """Every frame's decoded pixels, from a fresh decode."""
    with Image.open(io.BytesIO(data)) as im:
        return [frame.convert("RGBA").tobytes() for frame in ImageSequence.Iterator(im)]


@pytest.fixture
def decoded_frames() -> Callable[[bytes], list[bytes]]:
    return frames


TC260_NS = "http://www.tc260.org.cn/ns/AIGC/1.0/"


def count_tc260(packet: bytes) -> int:
    """How many TC260:AIGC properties (element or attribute form) a packet holds."""
    import xml.etree.ElementTree as ET

    if not packet.strip():
        return 0
    root = ET.fromstring(packet.strip(b"\x00 \r\n\t"))
    tag = f"{{{TC260_NS}}}AIGC"
    return sum(1 for el in root.iter() if el.tag == tag) + sum(
        1 for el in root.iter() if tag in el.attrib
    )


@pytest.fixture
def tc260_count() -> Callable[[bytes], int]:
    return count_tc260


def gif_with_xmp(data: bytes, packet: bytes) -> bytes:
    """Insert an XMP application extension (as other tools write it) before the first block."""
    packed = data[10]
    pos = 13 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0)
    trailer = b"\x01" + bytes(range(255, -1, -1)) + b"\x00"
    block = b"\x21\xff\x0bXMP DataXMP" + packet + trailer
    return data[:pos] + block + data[pos:]


def make_source(fmt: str, icc: bytes) -> bytes:
    """A file as a generator or editor leaves it: EXIF orientation, ICC, foreign XMP, text."""
    from PIL import PngImagePlugin

    im = Image.fromarray(photo_array())
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x0131] = "DiffusionTool 2.0"
    buf = io.BytesIO()
    if fmt == "jpeg":
        im.save(buf, "JPEG", quality=90, exif=exif, icc_profile=icc, xmp=OTHER_XMP)
    elif fmt == "png":
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", "a lighthouse at dusk, Steps: 30, Sampler: Euler a")
        info.add_itxt("XML:com.adobe.xmp", OTHER_XMP.decode("utf-8"))
        im.save(buf, "PNG", pnginfo=info, exif=exif, icc_profile=icc)
    elif fmt == "webp":
        im.save(buf, "WEBP", quality=85, exif=exif, icc_profile=icc, xmp=OTHER_XMP)
    elif fmt == "tiff":
        im.save(
            buf,
            "TIFF",
            compression="tiff_lzw",
            icc_profile=icc,
            tiffinfo={274: 6, 305: "DiffusionTool 2.0", 700: OTHER_XMP},
        )
    elif fmt == "gif":
        frames_ = [Image.fromarray(photo_array(seed=i)).quantize(64) for i in range(3)]
        frames_[0].save(
            buf,
            "GIF",
            save_all=True,
            append_images=frames_[1:],
            loop=0,
            duration=120,
            comment=b"made with DiffusionTool",
        )
        return gif_with_xmp(buf.getvalue(), OTHER_XMP)
    else:
        raise ValueError(fmt)
    return buf.getvalue()


@pytest.fixture
def source(icc_profile: bytes) -> Callable[[str], bytes]:
    return lambda fmt: make_source(fmt, icc_profile)


@pytest.fixture
def other_xmp() -> bytes:
    return OTHER_XMP
