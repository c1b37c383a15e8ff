"""M4A: the ISO-BMFF record carrier on an audio-only movie (kind audio), read by ffprobe."""

from __future__ import annotations

import io
import json

from labelers.formats import Kind, get_handler, sniff_handler
from labelers.record import Record
from tests.videos import format_tags, needs_ffmpeg, write

RECORD = Record.first_write("0011911100007109120X0010001", "01JABCDEFGHJKMNPQRSTVWXYZ0")


def contract_sample() -> bytes:
    """1.5 s of AAC in an M4A (ipod muxer: brand M4A), made by PyAV: long enough for
    the audible label the registry contract draws."""
    import av
    import numpy as np

    out = io.BytesIO()
    with av.open(out, "w", format="ipod") as muxer:
        stream = muxer.add_stream("aac", rate=16000, layout="mono")
        tone = (np.sin(np.arange(24000) / 5) * 8000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(tone[None, :], format="s16", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            muxer.mux(packet)
        for packet in stream.encode(None):
            muxer.mux(packet)
    return out.getvalue()


@needs_ffmpeg
def test_an_m4a_is_audio_and_its_record_is_read_by_ffprobe(tmp_path):
    data = contract_sample()
    handler, media_type = sniff_handler(data)
    assert (media_type, handler.kind) == ("audio/mp4", Kind.AUDIO)
    assert get_handler("audio/mp4") is handler
    out = handler.write_record(data, RECORD)
    assert json.loads(format_tags(write(tmp_path, out, ".m4a"))["AIGC"]) == RECORD.as_dict()
    assert handler.read(out).video is None
