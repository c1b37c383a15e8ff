"""GIF specifics: the XMP application extension's place, animation, comments, GIF87a."""

from __future__ import annotations

import io

from PIL import Image

from labelers.formats import gif

HANDLER = gif.HANDLER


def animated(photo, **save) -> bytes:
    frames = [photo(seed=i).quantize(32) for i in range(4)]
    buf = io.BytesIO()
    frames[0].save(
        buf, "GIF", save_all=True, append_images=frames[1:], duration=[50, 60, 70, 80], **save
    )
    return buf.getvalue()


def frame_info(data: bytes) -> list[tuple[int, object]]:
    with Image.open(io.BytesIO(data)) as im:
        out = []
        for i in range(im.n_frames):
            im.seek(i)
            out.append((im.info.get("duration"), im.info.get("loop")))
        return out


def test_animation_loop_and_timing_survive(photo, record, decoded_frames, exiftool):
    data = animated(photo, loop=0)
    out = HANDLER.write_record(data, record)
    assert decoded_frames(out) == decoded_frames(data)
    assert frame_info(out) == frame_info(data)
    info = exiftool(out)
    assert info["GIF:FrameCount"] == 4 and info["GIF:AnimationIterations"] == 0
    assert info["XMP-TC260:AIGC"] == record.dumps(wrapped=False)


def test_the_xmp_extension_follows_the_loop_extension_and_precedes_the_first_frame(photo, record):
    out = HANDLER.write_record(animated(photo, loop=0), record)
    netscape = out.index(b"\x21\xff\x0bNETSCAPE2.0")
    xmp_ext = out.index(b"\x21\xff\x0bXMP DataXMP")
    first_gce = out.index(b"\x21\xf9\x04")
    assert netscape < xmp_ext < first_gce
    # the packet is followed by the XMP specification's 258-byte magic trailer
    trailer = b"\x01" + bytes(range(255, -1, -1)) + b"\x00"
    end = out.index(b'<?xpacket end="w"?>', xmp_ext) + len(b'<?xpacket end="w"?>')
    assert out[end : end + 258] == trailer


def test_comments_are_properties_and_a_comment_record_is_replaced(photo, record, other_record):
    data = animated(photo, comment=other_record.dumps().encode())
    found = HANDLER.read(data).records
    assert [(f.carrier, f.record) for f in found] == [("gif:comment", other_record)]
    out = HANDLER.write_record(data, record)
    assert [(f.carrier, f.record) for f in HANDLER.read(out).records] == [
        ("xmp:TC260:AIGC", record)
    ]

    data = animated(photo, comment=b"made with love")
    out = HANDLER.write_record(data, record)
    assert HANDLER.read(out).properties["gif:comment"] == "made with love"


def test_a_gif87a_file_is_upgraded_to_carry_the_extension(photo, record, decoded_frames):
    buf = io.BytesIO()
    photo().quantize(64).save(buf, "GIF")
    data = b"GIF87a" + buf.getvalue()[6:]
    out = HANDLER.write_record(data, record)
    assert out.startswith(b"GIF89a")
    assert decoded_frames(out) == decoded_frames(data)
    assert [f.record for f in HANDLER.read(out).records] == [record]
