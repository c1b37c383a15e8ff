"""Seed files for every format and the mutations the fuzzer applies to them.

Seeds are built here (small, a few KB), not read from disk. Mutations are
structure-aware where it matters: besides bit flips, inserts and truncation,
length fields are set huge and chunks, segments and boxes are duplicated,
which is how container parsers usually break.
"""

from __future__ import annotations

import io
import random
import struct
import zipfile
from collections.abc import Callable

from PIL import Image

from labelers.formats import get_handler
from labelers.record import Record

PRODUCER = "0011911100007109120X0010001"
RECORD = Record.first_write(PRODUCER, "01JABCDEFGHJKMNPQRSTVWXYZ0")


def _image(fmt: str, **opts) -> bytes:
    im = Image.effect_noise((160, 128), 50).convert("RGB")
    out = io.BytesIO()
    im.save(out, fmt, **opts)
    return out.getvalue()


def _gif() -> bytes:
    frames = [Image.effect_noise((130, 120), 40 + 10 * i).convert("P") for i in range(3)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)
    return out.getvalue()


def _pdf() -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(text="A generated report.")
    return bytes(pdf.output())


def _docx() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats'
            '.org/package/2006/content-types"><Default Extension="rels" ContentType="application/'
            'vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType='
            '"application/xml"/><Override PartName="/word/document.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
        )
        z.writestr(
            "_rels/.rels",
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
            'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http:'
            '//schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
            'Target="word/document.xml"/></Relationships>',
        )
        z.writestr(
            "word/document.xml",
            '<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.'
            'openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>Generated '
            "text.</w:t></w:r></w:p></w:body></w:document>",
        )
    return out.getvalue()


def _audio(fmt: str) -> bytes:
    """An 8 kHz mono tone with tags, by ffmpeg, just long enough for the audible label."""
    from tests.audio_samples import ffmpeg_file

    return ffmpeg_file(fmt, rate=8000, channels=1, seconds=1.5, tags={"title": "t"})


def video_sample(container: str, codec: str, side: int = 64) -> bytes:
    """Ten ``side``-square frames of a moving gradient, encoded by PyAV (its bundled FFmpeg)."""
    import av
    import numpy as np

    out = io.BytesIO()
    with av.open(out, "w", format=container) as muxer:
        stream = muxer.add_stream(codec, rate=10)
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        stream.thread_count = 1  # the same bytes on every run
        if codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        elif codec == "libvpx-vp9":
            stream.options = {"deadline": "realtime", "cpu-used": "8"}
        ramp = np.add.outer(np.arange(side), np.arange(side)).astype(np.uint8)
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.dstack([ramp + 8 * i] * 3), format="rgb24")
            muxer.mux(stream.encode(frame))
        muxer.mux(stream.encode(None))
    return out.getvalue()


def _with_record(data: bytes, media_type: str) -> bytes:
    """A seed that already carries a record, so record-parsing paths are fuzzed too."""
    return get_handler(media_type).write_record(data, RECORD)


SEED_BUILDERS: dict[str, Callable[[], bytes]] = {
    "image/jpeg": lambda: _image("JPEG", quality=80),
    "image/png": lambda: _image("PNG"),
    "image/webp": lambda: _image("WEBP", quality=80),
    "image/tiff": lambda: _image("TIFF"),
    "image/gif": _gif,
    "image/avif": lambda: _image("AVIF", quality=60),
    "application/pdf": _pdf,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": _docx,
    "text/markdown": lambda: b"---\ntitle: t\ntags: [a, b]\n---\n# Head\n\n- item\n\nText.\n",
    "text/html": lambda: (
        b"<!doctype html><html><head><meta charset='utf-8'><title>t</title></head>"
        b"<body><p>Generated.</p></body></html>"
    ),
    "audio/wav": lambda: _audio("wav"),
    "audio/mpeg": lambda: _audio("mp3"),
    "audio/flac": lambda: _audio("flac"),
    "audio/ogg": lambda: _audio("opus"),
    "video/mp4": lambda: video_sample("mp4", "libx264"),
    "video/webm": lambda: video_sample("webm", "libvpx-vp9"),
}

#: short names for reports and regression file names
SHORT = {
    "image/jpeg": "jpeg",
    "image/png": "png",
    "image/webp": "webp",
    "image/tiff": "tiff",
    "image/gif": "gif",
    "image/avif": "avif",
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "text/markdown": "markdown",
    "text/html": "html",
    "audio/wav": "wav",
    "audio/mpeg": "mp3",
    "audio/flac": "flac",
    "audio/ogg": "ogg",
    "video/mp4": "mp4",
    "video/webm": "webm",
}


#: more seeds for formats with more than one shape worth mutating
EXTRA_SEEDS: dict[str, Callable[[], bytes]] = {
    # Hugo's TOML front matter, with a table and an array of tables
    "text/markdown": lambda: (
        b'+++\ntitle = "t"\ntags = ["a", "b"]\n[params]\nx = 1\n[[r]]\ns = "c"\n+++\n'
        b"# Head\n\n- item\n\nText.\n"
    ),
}


def seeds(media_type: str) -> list[bytes]:
    out = []
    for build in (SEED_BUILDERS[media_type], EXTRA_SEEDS.get(media_type)):
        if build is not None:
            plain = build()
            out += [plain, _with_record(plain, media_type)]
    return out


# ------------------------------------------------------------------ mutations
def _flip(data: bytearray, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8)


def _set_byte(data: bytearray, rng: random.Random) -> None:
    i = rng.randrange(len(data))
    data[i] = rng.choice((0x00, 0xFF, 0x7F, 0x80, rng.randrange(256)))


def _huge_length(data: bytearray, rng: random.Random) -> None:
    """A 16- or 32-bit field set to a huge value, big- or little-endian."""
    i = rng.randrange(max(len(data) - 4, 1))
    value = rng.choice((0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0x00FFFFFF, 0xFFFF))
    order = rng.choice((">", "<"))
    if value > 0xFFFF:
        data[i : i + 4] = struct.pack(order + "I", value)
    else:
        data[i : i + 2] = struct.pack(order + "H", value)


def _insert(data: bytearray, rng: random.Random) -> None:
    i = rng.randrange(len(data) + 1)
    junk = rng.choice((b"\x00" * rng.randint(1, 64), rng.randbytes(rng.randint(1, 64))))
    data[i:i] = junk


def _delete(data: bytearray, rng: random.Random) -> None:
    i = rng.randrange(len(data))
    del data[i : i + rng.randint(1, 64)]


def _truncate(data: bytearray, rng: random.Random) -> None:
    del data[rng.randrange(1, len(data)) :]


def _duplicate(data: bytearray, rng: random.Random) -> None:
    """A span copied next to itself: duplicated chunks, segments, boxes, entries."""
    i = rng.randrange(len(data))
    j = min(len(data), i + rng.randint(8, 2048))
    data[j:j] = data[i:j]


def _duplicate_unit(data: bytearray, rng: random.Random) -> None:
    """A whole container unit (PNG/RIFF chunk, JPEG segment, ISO box) duplicated."""
    units = list(_units(bytes(data)))
    if not units:
        _duplicate(data, rng)
        return
    start, end = rng.choice(units)
    data[end:end] = data[start:end]


def _units(data: bytes):
    if data.startswith(b"\x89PNG"):
        pos = 8
        while pos + 12 <= len(data):
            n = int.from_bytes(data[pos : pos + 4], "big")
            yield pos, min(pos + 12 + n, len(data))
            pos += 12 + n
    elif data.startswith(b"RIFF"):
        pos = 12
        while pos + 8 <= len(data):
            n = int.from_bytes(data[pos + 4 : pos + 8], "little")
            end = min(pos + 8 + n + (n & 1), len(data))
            yield pos, end
            pos = end
    elif data.startswith(b"\xff\xd8"):
        pos = 2
        while pos + 4 <= len(data) and data[pos] == 0xFF and data[pos + 1] not in (0xDA, 0xD9):
            n = int.from_bytes(data[pos + 2 : pos + 4], "big")
            yield pos, min(pos + 2 + n, len(data))
            pos += 2 + n
    elif data[4:8] == b"ftyp":
        pos = 0
        while pos + 8 <= len(data):
            n = int.from_bytes(data[pos : pos + 4], "big")
            if n < 8:
                break
            yield pos, min(pos + n, len(data))
            pos += n


def _nest(data: bytearray, rng: random.Random) -> None:
    """The file inside itself (a container nested in its own payload)."""
    i = rng.randrange(len(data))
    data[i:i] = bytes(data[: min(len(data), 4096)])


MUTATORS = [
    _flip,
    _set_byte,
    _huge_length,
    _insert,
    _delete,
    _truncate,
    _duplicate,
    _duplicate_unit,
    _nest,
]


def _fix_ogg_crcs(data: bytearray) -> None:
    """Recompute the CRC of every page that still parses, so the parser behind it is reached."""
    from labelers.formats.ogg import PAGE_HEADER, page_crc

    pos = 0
    while data[pos : pos + 4] == b"OggS" and pos + PAGE_HEADER <= len(data):
        nsegs = data[pos + 26]
        end = pos + PAGE_HEADER + nsegs + sum(data[pos + PAGE_HEADER : pos + PAGE_HEADER + nsegs])
        if end > len(data):
            return
        data[pos + 22 : pos + 26] = b"\x00\x00\x00\x00"
        data[pos + 22 : pos + 26] = page_crc(data[pos:end]).to_bytes(4, "little")
        pos = end


def mutants(media_type: str, count: int, seed: int = 0) -> list[bytes]:
    """``count`` mutants of this format's seeds, the same for the same ``seed``."""
    rng = random.Random(f"{media_type}:{seed}")
    base = seeds(media_type)
    out = []
    for _ in range(count):
        data = bytearray(rng.choice(base))
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            if len(data) < 2:
                break
            rng.choice(MUTATORS)(data, rng)
        if data.startswith(b"OggS") and rng.random() < 0.5:
            _fix_ogg_crcs(data)  # else nearly every Ogg mutant stops at its first bad CRC
        out.append(bytes(data))
    return out
