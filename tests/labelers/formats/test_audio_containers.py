"""Audio containers (WAV, MP3, FLAC, Ogg Vorbis, Ogg Opus): the record spliced in and
read back by ffprobe, exiftool and mutagen; the audio untouched; other tags kept."""

from __future__ import annotations

import functools
import io
import json
import struct

import mutagen
import pytest
from mutagen.flac import FLAC, Picture
from mutagen.id3 import APIC, COMM, ID3, TXXX
from mutagen.oggvorbis import OggVorbis

from labelers.errors import CorruptInput
from labelers.formats import content_digest, get_handler, sniff
from labelers.formats import ogg as ogg_format
from labelers.limits import Limits
from labelers.record import Record
from tests.audio_samples import (
    FORMATS,
    MEDIA_TYPES,
    decoded,
    exiftool_records,
    ffmpeg_file,
    ffprobe,
    mediainfo,
    pyav_file,
)
from tests.support import raises_limit

PRODUCER = "0011911100007109120X0010001"
RECORD = Record.first_write(PRODUCER, "01JABCDEFGHJKMNPQRSTVWXYZ0")
TAGS = {"title": "Test Song", "artist": "Someone"}
# (maker, rate, channels): two muxers, several rates and channel counts
MAKERS = [
    ("ffmpeg", 44100, 2),
    ("ffmpeg", 22050, 1),
    ("pyav", 48000, 1),
    ("pyav", 16000, 2),
]


def make(fmt: str, maker: str, rate: int, channels: int) -> bytes:
    if maker == "ffmpeg":
        return ffmpeg_file(fmt, rate, channels, tags=TAGS)
    return pyav_file(fmt, rate, channels)


def records(data: bytes) -> list:
    return get_handler(sniff(data)).read(data).records


@pytest.mark.parametrize("maker,rate,channels", MAKERS, ids=[f"{m}-{r}-{c}" for m, r, c in MAKERS])
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_record_round_trips_through_independent_readers_and_the_audio_is_untouched(
    fmt, maker, rate, channels
):
    original = make(fmt, maker, rate, channels)
    media_type = sniff(original)
    assert media_type == MEDIA_TYPES[fmt]
    handler = get_handler(media_type)
    out = handler.write_record(original, RECORD)

    found = handler.read(out).records
    assert [f.record for f in found] == [RECORD]
    # an independent reader sees the record, the stream is the same and decodes to
    # exactly the same samples
    before, after = ffprobe(original), ffprobe(out)
    assert exiftool_records(out) == [RECORD]
    if fmt != "wav":  # ffprobe does not list custom RIFF chunks
        assert Record.parse(after["tags"]["aigc"]) == RECORD
        assert {k: v for k, v in after["tags"].items() if k != "aigc"} == before["tags"]
    for key in ("duration", "codec", "sample_rate", "channels"):
        assert after[key] == before[key], key
    assert decoded(out) == decoded(original)
    assert handler.content_digest(out) == handler.content_digest(original)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_relabelling_keeps_one_record_and_mediainfo_reads_the_new_one(fmt):
    original = ffmpeg_file(fmt, tags=TAGS)
    handler = get_handler(sniff(original))
    newer = RECORD.with_fields(propagate_id="PLATFORM-42")
    out = handler.write_record(handler.write_record(original, RECORD), newer)
    assert [f.record for f in handler.read(out).records] == [newer]
    info = mediainfo(out)
    if fmt != "wav":  # mediainfo lists tags; a custom RIFF chunk it does not
        assert info.count('"PropagateID":"PLATFORM-42"') == 1, info
        assert '"PropagateID":"01JABCDEFGHJKMNPQRSTVWXYZ0"' not in info


def test_content_digest_changes_with_the_audio_not_the_tags():
    a = ffmpeg_file("flac", tags={"title": "one"})
    b = ffmpeg_file("flac", tags={"title": "two"})
    c = ffmpeg_file("flac", seconds=0.6, tags={"title": "one"})
    assert content_digest(a) == content_digest(b)
    assert content_digest(a) != content_digest(c)


# ----------------------------------------------------------- tags of other tools
def _mutagen_save(data: bytes, kind, edit) -> bytes:
    buf = io.BytesIO(data)
    tags = kind(buf)
    edit(tags)
    buf.seek(0)
    tags.save(buf)
    return buf.getvalue()


@functools.cache
def _picture() -> Picture:
    from PIL import Image

    png = io.BytesIO()
    Image.effect_noise((64, 64), 40).convert("RGB").save(png, "PNG")
    pic = Picture()
    pic.type = 3
    pic.mime = "image/png"
    pic.desc = "cover"
    pic.width = pic.height = 64
    pic.data = png.getvalue()
    return pic


@pytest.mark.parametrize("v2_version", [3, 4])
def test_mp3_keeps_every_id3_frame_and_the_id3v1_tail(v2_version):
    base = ffmpeg_file("mp3", extra=("-write_id3v1", "1", "-metadata", "title=Tail"))
    buf = io.BytesIO(base)
    tags = ID3(buf)
    tags.add(APIC(encoding=0, mime="image/png", type=3, desc="cover", data=_picture().data))
    tags.add(COMM(encoding=3, lang="eng", desc="", text="kept comment"))
    tags.add(TXXX(encoding=3, desc="other", text="value"))
    buf.seek(0)
    tags.save(buf, v2_version=v2_version)
    original = buf.getvalue()
    assert original.endswith(original[-128:]) and original[-128:-125] == b"TAG"

    out = get_handler("audio/mpeg").write_record(original, RECORD)
    assert out[-128:] == original[-128:]  # ID3v1 tail byte for byte
    reread = ID3(io.BytesIO(out))
    assert reread.version[1] == v2_version
    assert Record.parse(reread["TXXX:AIGC"].text[0]) == RECORD
    assert reread.getall("APIC")[0].data == _picture().data
    assert str(reread["COMM::eng"]) == "kept comment"
    assert str(reread["TXXX:other"]) == "value"
    assert decoded(out) == decoded(original)


def test_minimax_style_lower_case_txxx_is_read_and_replaced():
    wild = {"aigc": {"label": "1", "contentproducer": "minimax", "produceid": "abc123"}}
    original = _mutagen_save(
        ffmpeg_file("mp3"),
        ID3,
        lambda t: t.add(TXXX(encoding=3, desc="aigc", text=json.dumps(wild))),
    )
    found = get_handler("audio/mpeg").read(original).records
    assert [(f.carrier, f.record.content_producer) for f in found] == [("id3:TXXX:aigc", "minimax")]
    out = get_handler("audio/mpeg").write_record(original, RECORD)
    reread = ID3(io.BytesIO(out))
    assert [f.desc for f in reread.getall("TXXX")] == ["AIGC"]


@pytest.mark.parametrize("fmt", ["flac", "vorbis"])
def test_vorbis_comments_and_pictures_made_by_mutagen_are_kept(fmt):
    def edit(tags):
        tags["ALBUM"] = "Kept Album"
        tags["aigc"] = json.dumps({"AIGC": RECORD.with_fields(propagate_id="OLD").as_dict()})
        if isinstance(tags, FLAC):
            tags.add_picture(_picture())
        else:
            import base64

            tags["METADATA_BLOCK_PICTURE"] = base64.b64encode(_picture().write()).decode()

    kind = FLAC if fmt == "flac" else OggVorbis
    original = _mutagen_save(ffmpeg_file(fmt, tags=TAGS), kind, edit)
    assert [f.record.propagate_id for f in records(original)] == ["OLD"]
    out = get_handler(sniff(original)).write_record(original, RECORD)
    reread = mutagen.File(io.BytesIO(out))
    assert reread["album"] == ["Kept Album"] and reread["title"] == ["Test Song"]
    assert [Record.parse(v) for v in reread["aigc"]] == [RECORD]
    if fmt == "flac":
        assert reread.pictures[0].data == _picture().data
    else:
        assert "metadata_block_picture" in reread
    assert decoded(out) == decoded(original)


def test_ogg_headers_are_repaginated_when_the_comment_outgrows_its_page():
    import base64

    big = base64.b64encode(_picture().write() * 30).decode()  # ~400 KB: several pages
    original = ffmpeg_file("vorbis", seconds=1.0, tags=TAGS)
    grown = _mutagen_save(original, OggVorbis, lambda t: t.__setitem__("COVERART", big))
    handler = get_handler("audio/ogg")
    for source in (original, grown):
        out = handler.write_record(source, RECORD)
        ogg_format._parse(out, Limits())  # every CRC and sequence number checks
        assert decoded(out) == decoded(source)
        assert ffprobe(out)["duration"] == ffprobe(source)["duration"]
    # the picture-sized comment leaves again: the header shrinks back to one page
    shrunk = handler.carry_metadata(original, handler.write_record(grown, RECORD))
    assert [f.record for f in handler.read(shrunk).records] == []
    assert decoded(shrunk) == decoded(original)


@pytest.mark.parametrize("fmt", ["vorbis", "opus"])
def test_signed_label_of_ogg_parses_the_pages_once_and_matches_the_two_step_path(fmt, monkeypatch):
    # the digest and the record share one parse: every page's CRC is checked once
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from labelers import integrity
    from labelers.pipeline import FileOptions, LabelContext, label_file

    signer = integrity.RecordSigner(Ed25519PrivateKey.generate())
    original = ffmpeg_file(fmt, seconds=2.0, tags=TAGS)
    handler = get_handler("audio/ogg")
    two_step = handler.write_record(
        original, signer.sign_producer(RECORD, handler.content_digest(original))
    )
    parses = []
    real = ogg_format._pages
    monkeypatch.setattr(ogg_format, "_pages", lambda d, lim: parses.append(1) or real(d, lim))
    options = FileOptions(explicit=False, watermark=False, c2pa=False)
    out = label_file(original, RECORD, options, LabelContext(record_signer=signer))
    assert len(parses) == 1
    assert out.data == two_step  # Ed25519 signatures are deterministic
    keyring = integrity.Keyring()
    keyring.add_pem(signer.public_pem(), {"*"})
    check = integrity.verify(
        integrity.PRODUCER, out.record, handler.content_digest(out.data), keyring
    )
    assert check.status == integrity.VALID
    with pytest.raises(CorruptInput):
        damaged = bytearray(original)
        damaged[len(damaged) // 2] ^= 0xFF
        label_file(bytes(damaged), RECORD, options, LabelContext(record_signer=signer))


# --------------------------------------------------------------- carry_metadata
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_carry_metadata_puts_the_original_tags_on_the_reencoded_audio(fmt):
    original = get_handler(MEDIA_TYPES[fmt]).write_record(ffmpeg_file(fmt, tags=TAGS), RECORD)
    reencoded = ffmpeg_file(fmt, seconds=0.7, extra=("-map_metadata", "-1"))
    handler = get_handler(MEDIA_TYPES[fmt])
    out = handler.carry_metadata(original, reencoded)
    assert [f.record for f in handler.read(out).records] == [RECORD]
    assert handler.content_digest(out) == handler.content_digest(reencoded)
    assert decoded(out) == decoded(reencoded)
    tags = ffprobe(out)["tags"]
    assert tags["title"] == "Test Song" and tags["artist"] == "Someone"


# ------------------------------------------------------------------ bad input
def _wav() -> bytes:
    return ffmpeg_file("wav", seconds=0.1)


def _damaged() -> list[tuple[str, bytes]]:
    wav, mp3 = _wav(), ffmpeg_file("mp3", tags=TAGS)
    flac, vorbis = ffmpeg_file("flac", tags=TAGS), ffmpeg_file("vorbis", tags=TAGS)
    data_at = wav.index(b"data")
    lying_data = bytearray(wav)
    lying_data[data_at + 4 : data_at + 8] = struct.pack("<I", len(wav))  # more than is there
    lying_id3 = bytearray(mp3)
    lying_id3[6:10] = b"\x7f\x7f\x7f\x7f"  # a sync-safe tag size far past the file
    not_syncsafe = bytearray(mp3)
    not_syncsafe[9] |= 0x80
    bad_crc = bytearray(vorbis)
    bad_crc[40] ^= 0x55
    flac_block = bytearray(flac)
    flac_block[5:8] = b"\xff\xff\xff"  # STREAMINFO declares 16 MiB
    return [
        ("wav truncated", wav[: len(wav) // 2]),
        ("wav data size lies", bytes(lying_data)),
        ("wav without data", wav[:data_at]),
        ("id3 size past the end", bytes(lying_id3)),
        ("mp3 cut in half", mp3[: len(mp3) // 2]),
        ("id3 size not sync-safe", bytes(not_syncsafe)),
        ("ogg crc wrong", bytes(bad_crc)),
        ("ogg truncated", vorbis[:100]),
        ("flac block size lies", bytes(flac_block)),
        ("flac truncated", flac[:30]),
    ]


@pytest.mark.parametrize("name,data", _damaged(), ids=[n for n, _ in _damaged()])
def test_damaged_files_are_rejected_with_the_projects_errors(name, data):
    handler = get_handler(sniff(data))
    for call in (handler.read, handler.content_digest):
        with pytest.raises(CorruptInput):
            call(data)
    with pytest.raises(CorruptInput):
        handler.write_record(data, RECORD)


def test_audio_limits_are_checked_from_the_headers():
    flac = ffmpeg_file("flac", rate=48000, channels=2, seconds=0.5)
    handler = get_handler("audio/flac")
    for limits, limit in [
        (Limits(max_audio_seconds=0.2), "max_audio_seconds"),
        (Limits(max_audio_sample_rate=44100), "max_audio_sample_rate"),
        (Limits(max_audio_channels=1), "max_audio_channels"),
        (Limits(max_audio_decoded_bytes=1000), "max_audio_decoded_bytes"),
    ]:
        with raises_limit(limit):
            handler.read(flac, limits)
    # a 1-hour WAV declared by its header is refused without reading its samples
    wav = bytearray(_wav())
    fmt_at = wav.index(b"fmt ")
    wav[fmt_at + 12 : fmt_at + 16] = struct.pack("<I", 1)  # 1 Hz: the data lasts for hours
    wav[fmt_at + 16 : fmt_at + 20] = struct.pack("<I", 4)
    with raises_limit("max_audio_seconds"):
        get_handler("audio/wav").read(bytes(wav))


def test_a_wav_written_to_a_pipe_gets_true_sizes():
    import subprocess

    piped = subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=duration=0.2", "-f", "wav", "-"],
        capture_output=True,
        check=True,
    ).stdout
    assert piped[4:8] == b"\xff\xff\xff\xff"
    out = get_handler("audio/wav").write_record(piped, RECORD)
    assert struct.unpack("<I", out[4:8])[0] == len(out) - 8
    samples = piped[piped.index(b"data") + 8 :]
    assert out.endswith(struct.pack("<I", len(samples)) + samples)
    # ffmpeg itself stumbles over the pipe's sizes (-xerror) but decodes ours whole
    assert len(decoded(out)) == 4 * len(samples) // 2
