"""Metadata-only video labelling against a stream-copy remux of the same file.

The metadata half of the video benchmarks (the signal half, label + watermark
against a bare decode + encode, and verify time, is ``benchmarks/video.py``).
Writing the record touches ``moov`` (MP4/MOV) or the ``Tags`` element
(WebM/MKV) and copies the samples as bytes; the baseline is the cheapest
honest alternative a service could use to rewrite metadata: PyAV (its
bundled FFmpeg) remuxing every packet into a new container with the tag set.
Target: ratio <= 0.2.

Inputs are made by Debian's ffmpeg at the start: H.264/AAC MP4 (moov at the
end and fast-start), a MOV, and VP9/Opus WebM, 1280x720, ``--seconds`` long.
Timed: ``HANDLER.write_record`` alone, and the whole ``label_file`` with
``explicit=none``, ``watermark=false``, ``c2pa=false`` (sniff, limits, record
signing, write); the remux writes to memory.

    .venv/bin/python benchmarks/video_metadata.py [--seconds 20] [--rounds 7]
"""

from __future__ import annotations

import argparse
import io
import subprocess
import tempfile
from pathlib import Path

from common import interleaved_medians, machine, table  # type: ignore[import-not-found]

INPUTS = {
    "mp4 (moov at end)": (["-c:v", "libx264", "-c:a", "aac"], ".mp4", "mp4"),
    "mp4 fast-start": (
        ["-c:v", "libx264", "-c:a", "aac", "-movflags", "+faststart"],
        ".mp4",
        "mp4",
    ),
    "mov": (["-c:v", "libx264", "-c:a", "aac"], ".mov", "mov"),
    "webm vp9/opus": (
        ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-c:a", "libopus"],
        ".webm",
        "webm",
    ),
}


def make(workdir: Path, name: str, seconds: float) -> bytes:
    args, suffix, _ = INPUTS[name]
    out = workdir / f"{name.split()[0]}-{len(args)}{suffix}"
    subprocess.run(
        [
            *("ffmpeg", "-v", "error", "-y"),
            *("-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=30:duration={seconds}"),
            *("-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"),
            *("-shortest", "-preset", "veryfast", *args, str(out)),
        ],
        check=True,
    )
    return out.read_bytes()


def remux(data: bytes, muxer: str, value: str) -> bytes:
    """Every packet copied into a new container by PyAV, with one metadata tag."""
    import av

    out = io.BytesIO()
    with av.open(io.BytesIO(data)) as src, av.open(out, "w", format=muxer) as dst:
        dst.metadata["AIGC"] = value
        mapping = {}
        for stream in src.streams:
            if stream.type in ("video", "audio"):
                mapping[stream.index] = dst.add_stream_from_template(stream)
        for packet in src.demux():
            if packet.dts is None or packet.stream.index not in mapping:
                continue
            packet.stream = mapping[packet.stream.index]
            dst.mux(packet)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    from labelers.formats import get_handler, sniff
    from labelers.pipeline import FileOptions, label_file
    from labelers.record import Record

    record = Record.first_write("0011911100007109120X0010001", "01JABCDEFGHJKMNPQRSTVWXYZ0")
    options = FileOptions(explicit=False, watermark=False, c2pa=False)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (_, _, muxer) in INPUTS.items():
            data = make(Path(tmp), name, args.seconds)
            handler = get_handler(sniff(data))
            value = record.dumps(wrapped=False)
            times = interleaved_medians(
                {
                    "write_record": lambda d=data, h=handler: h.write_record(d, record),
                    "label_file": lambda d=data: label_file(d, record, options),
                    "remux": lambda d=data, m=muxer, v=value: remux(d, m, v),
                },
                args.rounds,
            )
            rows.append(
                (
                    name,
                    f"{len(data) / 1e6:.1f} MB",
                    f"{1000 * times['write_record']:.1f} ms",
                    f"{1000 * times['label_file']:.1f} ms",
                    f"{1000 * times['remux']:.1f} ms",
                    f"{times['write_record'] / times['remux']:.3f}",
                    f"{times['label_file'] / times['remux']:.3f}",
                )
            )
    print(machine())
    print(
        table(
            (
                "input",
                "size",
                "write_record",
                "label_file (metadata only)",
                "PyAV remux",
                "write_record / remux",
                "label_file / remux",
            ),
            rows,
        )
    )


if __name__ == "__main__":
    main()
