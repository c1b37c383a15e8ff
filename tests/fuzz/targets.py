"""What the fuzzer calls: every handler's read / write_record / content_digest, and
the labelling pipeline, each input's media type sniffed from its bytes like the service does.

Module-level functions, so the watchdog child (tests/fuzz/bounded.py) can run them.
A mutant that stops sniffing as its format is still a fair input: the service
would meet it too.
"""

from __future__ import annotations

import io

from labelers.formats import content_digest, get_handler, sniff
from labelers.limits import Limits
from labelers.pipeline import FileOptions, LabelContext, label_file
from tests.fuzz.mutate import RECORD

LIMITS = Limits()


def handler_round(data: bytes) -> None:
    """read, content_digest and write_record; a written file must read back with one record."""
    media_type = sniff(data)
    if media_type == "text/plain":
        content_digest(data, LIMITS)
        return
    handler = get_handler(media_type)
    handler.read(data, LIMITS)
    content_digest(data, LIMITS)
    out = handler.write_record(data, RECORD, LIMITS)
    check_one_record(out, media_type, input_opens=_opens(data, media_type))


def label_round(data: bytes) -> None:
    """The whole label pipeline with a visible label (decode, draw, re-encode)."""
    result = label_file(
        data, RECORD, FileOptions(watermark=False, c2pa=False), LabelContext(limits=LIMITS)
    )
    if result.media_type != "text/plain":
        check_one_record(result.data, result.media_type, _opens(data, result.media_type))


def _opens(data: bytes, media_type: str) -> bool:
    try:
        open_independently(data, media_type)
    except Exception:
        return False
    return True


def check_one_record(out: bytes, media_type: str, input_opens: bool = True) -> None:
    """The output holds exactly our record and, if the input opened in the
    independent reader, opens there too (else: a crash).

    A metadata-only write splices bytes around content it does not decode, so
    an input already damaged (a truncated JPEG) stays as damaged; what must
    never happen is an input that opened coming back broken.
    """
    if sniff(out) != media_type:
        raise AssertionError(f"output of {media_type} sniffs as {sniff(out)}")
    if input_opens:
        open_independently(out, media_type)
    meta = get_handler(media_type).read(out, LIMITS)
    records = {f.record for f in meta.records if f.record is not None}
    broken = [f for f in meta.records if f.record is None]
    if records != {RECORD} or broken:
        raise AssertionError(f"output holds {meta.records!r}, expected one record")


def open_independently(out: bytes, media_type: str) -> None:
    """Pillow decodes every frame of an image, pypdf every page, zipfile every entry's CRC."""
    if media_type.startswith("image/"):
        from PIL import Image, ImageSequence

        with Image.open(io.BytesIO(out)) as im:
            for frame in ImageSequence.Iterator(im):
                frame.load()
    elif media_type == "application/pdf":
        import pypdf

        reader = pypdf.PdfReader(io.BytesIO(out), strict=False)
        for page in reader.pages:
            page.get_contents()
    elif media_type.startswith("audio/"):
        _decode_audio(out)
    elif media_type.startswith("video/") or media_type == "audio/mp4":
        import av  # FFmpeg's demuxer: every packet must still be found

        with av.open(io.BytesIO(out)) as container:
            for _ in container.demux():
                pass
    elif media_type.startswith("application/vnd.openxmlformats"):
        import zipfile

        bad = zipfile.ZipFile(io.BytesIO(out)).testzip()
        if bad is not None:
            raise AssertionError(f"output entry {bad} fails its CRC")
    else:
        out.decode("utf-8")


def _decode_audio(data: bytes) -> None:
    """FFmpeg (through PyAV, in this process: a subprocess per mutant cost a second under
    load) decodes every packet of the first audio stream; our container code is not used."""
    import av

    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        for packet in container.demux(stream):
            packet.decode()
