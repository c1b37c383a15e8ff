"""Video signal: the burned-in label and the watermark (issue 13, signal half).

Measured in one run:

- **cost**: :func:`labelers.video.apply_video` with the visible label and the
  watermark, as a ratio of a bare decode + encode of the same file at the
  settings our output is written with (:func:`bare_reencode`: codec, CRF
  including the marked encode's cap, preset, rate ceiling, pixel format,
  frames and timestamps, encoder threads, audio copy), wall and CPU time, in
  interleaved rounds after a warm-up;
- **PSNR** of the marked frames' luma against the unmarked frames (before
  encoding: what the mark itself costs), minimum and mean over the frames;
- **robustness**: exact recovery of the 64-bit key by
  :func:`detectors.video.inspect_video` after each attack, over generated
  clips with motion and texture (ffmpeg's ``testsrc2``, ``mandelbrot``,
  ``life``, temporal noise, and moving crops of the real generators' images
  in ``../shared/corpus/wild``). Attacks are made by Debian's ffmpeg (an
  independent encoder): H.264 CRF 23 and 28, a downscale to 480p (and to
  720p when the clips are 1080p), 30 -> 25 fps, a cut of the first 5 s, a
  crop of 10% per edge;
- **false detections** on unmarked clips (varied sources, sizes and
  encodes): the watermark search of ``inspect_video`` on each;
- **verify time** of a 60 s clip (default 1080p): CPU seconds of
  ``inspect_video`` (all threads summed: what one core would take) and wall
  time, next to the machine's load.

Small by default (a few minutes); the full matrix:

    .venv/bin/python benchmarks/video.py --clips 10 --size 1920x1080 --null 200 --update-docs

Default:

    .venv/bin/python benchmarks/video.py [--clips 10] [--size 1280x720] [--seconds 7] \
        [--null 200] [--verify-size 1920x1080] [--rounds 3] [--update-docs]
"""

from __future__ import annotations

import argparse
import io
import math
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import interleaved_wall_and_cpu, machine, table

CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus" / "wild"
FFMPEG = ["ffmpeg", "-v", "error", "-y", "-threads", "1"]
WORDING = "人工智能生成"


def _run(args: list[str]) -> None:
    subprocess.run(FFMPEG + args, check=True)


def _corpus_stills(work: Path) -> list[Path]:
    """The corpus images as plain PNGs ffmpeg reads (some carry chunks it trips on)."""
    from PIL import Image

    out = []
    if not CORPUS.is_dir():
        return out
    for path in sorted(CORPUS.glob("*.png")) + sorted(CORPUS.glob("*.jpg")):
        target = work / f"still-{path.stem}.png"
        Image.open(path).convert("RGB").save(target)
        out.append(target)
    return out


def _source_filter(kind: str, size: tuple[int, int], rate: int, seed: int) -> list[str]:
    """ffmpeg input arguments for one generated source (video only)."""
    w, h = size
    small = f"{max(64, w // 4)}x{max(36, h // 4)}"
    up = f"scale={w}:{h}:flags=bicubic"
    if kind == "testsrc2":
        return ["-f", "lavfi", "-i", f"testsrc2=s={w}x{h}:r={rate}"]
    if kind == "mandelbrot":
        # rendered small and enlarged (a full-size render takes minutes), with grain
        return [
            "-f",
            "lavfi",
            "-i",
            f"mandelbrot=s={small}:r={rate}:start_scale={2.0 + seed % 3},{up},"
            f"noise=alls=8:allf=t:all_seed={seed}",
        ]
    if kind == "life":
        return [
            "-f",
            "lavfi",
            "-i",
            f"life=s={small}:r={rate}:mold=10:ratio=0.2:seed={seed}:"
            f"life_color=#e0c070:death_color=#203060,{up},noise=alls=10:allf=t:all_seed={seed}",
        ]
    if kind == "noise":
        return [
            "-f",
            "lavfi",
            "-i",
            f"gradients=s={w}x{h}:r={rate}:speed=0.02:seed={seed},"
            f"noise=alls=25:allf=t+u:all_seed={seed}",
        ]
    raise ValueError(kind)


def make_clip(
    path: Path, kind: str, size: tuple[int, int], seconds: float, seed: int, still: Path | None
) -> None:
    """One H.264/AAC MP4 clip with motion and texture."""
    w, h = size
    rate = 30
    audio = ["-f", "lavfi", "-i", f"sine=f={200 + 40 * (seed % 10)}:d={seconds}"]
    if kind == "still":
        # a slow pan and zoom over a real generator's image
        video = ["-loop", "1", "-framerate", str(rate), "-i", str(still)]
        vf = (
            f"scale={int(w * 1.6)}:-2,crop={w}:{h}:x='(iw-ow)*t/{seconds}':"
            f"y='(ih-oh)*(0.5+0.4*sin(t))',format=yuv420p"
        )
        args = [*video, *audio, "-filter_complex", f"[0:v]{vf}[v]", "-map", "[v]", "-map", "1:a"]
    else:
        args = [*_source_filter(kind, size, rate, seed), *audio, "-map", "0:v", "-map", "1:a"]
    args += ["-t", str(seconds), "-r", str(rate), "-pix_fmt", "yuv420p"]
    args += ["-c:v", "libx264", "-crf", "18", "-preset", "veryfast"]
    if kind == "noise":
        # temporal noise at CRF 18 runs at ~130-150 Mbit/s at 720p, over the
        # service's 100 Mbit/s limit (AIGC_MAX_VIDEO_BITRATE): it is refused
        args += ["-maxrate", "40M", "-bufsize", "80M"]
    args += ["-c:a", "aac", str(path)]
    _run(args)


def _kinds(n: int, stills: list[Path]) -> list[tuple[str, Path | None]]:
    base = ["testsrc2", "mandelbrot", "life", "noise"]
    out: list[tuple[str, Path | None]] = []
    i = 0
    while len(out) < n:
        if i % 2 == 1 and stills:
            out.append(("still", stills[(i // 2) % len(stills)]))
        else:
            out.append((base[(i // 2) % len(base)], None))
        i += 1
    return out


def attacks(size: tuple[int, int]) -> dict[str, list[str]]:
    """ffmpeg output arguments per attack (re-encoded H.264 where not said otherwise)."""
    # veryfast: a platform's transcoder setting, and a run in minutes
    enc = ["-c:v", "libx264", "-preset", "veryfast", "-an"]
    out = {
        "h264 crf23": [*enc, "-crf", "23"],
        "h264 crf28": [*enc, "-crf", "28"],
    }
    if size[1] > 720:
        out["720p"] = ["-vf", "scale=-2:720", *enc, "-crf", "23"]
    out["480p"] = ["-vf", "scale=-2:480", *enc, "-crf", "23"]
    out["30->25 fps"] = ["-vf", "fps=25", *enc, "-crf", "23"]
    out["cut first 5 s"] = ["-ss", "5", *enc, "-crf", "23"]
    out["crop 10%/edge"] = ["-vf", "crop=iw*0.8:ih*0.8", *enc, "-crf", "23"]
    return out


def _attack(src: Path, dst: Path, args: list[str]) -> None:
    if args[:1] == ["-ss"]:  # an input seek: the cut
        _run(["-ss", args[1], "-i", str(src), *args[2:], str(dst)])
    else:
        _run(["-i", str(src), *args, str(dst)])


def _psnr(data: bytes, key: int, frames: int = 12) -> tuple[float, float]:
    """(min, mean) luma PSNR of marked against unmarked frames, before encoding."""
    import av

    from labelers.watermark.video import FrameMarker

    values = []
    with av.open(io.BytesIO(data)) as c:
        stream = c.streams.video[0]
        marker = None
        for frame in c.decode(stream):
            y = frame.to_ndarray(format="gray")
            if marker is None:
                marker = FrameMarker(key, frame.width, frame.height)
            marked = y.copy()
            marker.mark(marked)
            mse = float(np.mean((marked.astype(np.float64) - y) ** 2))
            values.append(10 * math.log10(255**2 / max(mse, 1e-12)))
            if len(values) >= frames:
                break
    return min(values), float(np.mean(values))


def bare_reencode(data: bytes, media_type: str, info, *, marked: bool) -> bytes:
    """A bare decode + encode of the video stream at the settings the labelled
    output is written with (encoder, CRF, preset, rate ceiling, pixel format,
    colour tags, timestamps, encoder threads: ``labelers.video._video_output``;
    ``marked`` picks the watermarked encode's CRF cap), the audio copied;
    nothing drawn, no frame copied or converted."""
    import av

    from labelers import video as lv
    from labelers.limits import DEFAULT_LIMITS

    muxer = lv.CONTAINERS[media_type][1]
    encoder = lv._encoder_for(info, muxer, [])
    out_fmt = lv._encoder_format(encoder, lv._work_format(info.pix_fmt), [])
    ceiling = lv.rate_ceiling(DEFAULT_LIMITS, info.other_bitrate)
    sink_file = io.BytesIO()
    with av.open(io.BytesIO(data), format=lv.CONTAINERS[media_type][0]) as source:
        vin = source.streams.video[0]
        vin.thread_type = "AUTO"
        with av.open(sink_file, "w", format=muxer) as sink:
            vout = lv._video_output(sink, vin, encoder, out_fmt, info, marked, ceiling)
            copies = {s.index: sink.add_stream_from_template(s) for s in source.streams.audio}
            for packet in source.demux():
                if packet.stream.index in copies:
                    if packet.dts is not None:
                        packet.stream = copies[packet.stream.index]
                        sink.mux(packet)
                    continue
                for frame in packet.decode():
                    if frame.format.name != out_fmt:
                        frame = frame.reformat(format=out_fmt)
                    for out in vout.encode(frame):
                        sink.mux(out)
            for out in vout.encode(None):
                sink.mux(out)
    return sink_file.getvalue()


def cost_ratio(path: Path, rounds: int) -> dict[str, tuple[float, float]]:
    """(wall, CPU) median seconds: label + mark, label only, and the bare decode +
    encode at the same settings (the CRF a marked encode is capped at, and the
    one an unmarked encode picks, when they differ)."""
    from labelers import video as lv
    from labelers.limits import DEFAULT_LIMITS

    data = path.read_bytes()
    info = lv.probe(data, DEFAULT_LIMITS, "video/mp4")

    def signal() -> None:
        lv.apply_video(
            data,
            "video/mp4",
            wording=WORDING,
            position="bottom-right",
            span="start",
            watermark_key=0x0123456789ABCDEF,
        )

    def label_only() -> None:
        lv.apply_video(
            data,
            "video/mp4",
            wording=WORDING,
            position="bottom-right",
            span="start",
            watermark_key=None,
        )

    jobs = {"bare": lambda: bare_reencode(data, "video/mp4", info, marked=True)}
    encoder = lv._encoder_for(info, "mp4", [])
    if lv.quality_options(encoder, info, marked=False) != lv.quality_options(
        encoder, info, marked=True
    ):
        jobs["bare (unmarked CRF)"] = lambda: bare_reencode(data, "video/mp4", info, marked=False)
    jobs.update({"label": label_only, "label+mark": signal})
    wall, cpu = interleaved_wall_and_cpu(jobs, rounds, warmup=1)
    return {k: (wall[k], cpu[k]) for k in jobs}


def cost_table(cost: dict[str, tuple[float, float]], what: str) -> str:
    """The cost rows: label + mark against the bare encode at the marked CRF,
    label only against the bare encode at its own CRF."""
    bare = cost["bare"]
    unmarked = cost.get("bare (unmarked CRF)", bare)
    rows = []
    for name, (wall, cpu) in cost.items():
        base = unmarked if name in ("label", "bare (unmarked CRF)") else bare
        rows.append(
            [name, f"{wall:.2f}", f"{cpu:.2f}", f"{wall / base[0]:.2f}", f"{cpu / base[1]:.2f}"]
        )
    return table([what, "median s wall", "median s CPU", "ratio wall", "ratio CPU"], rows) + (
        "\n\nRatios: label + mark to the bare decode + encode at the marked CRF; "
        "label only to the bare one at its own CRF."
    )


def verify_time(work: Path, size: tuple[int, int]) -> tuple[float, float]:
    """(CPU, wall) seconds of inspect_video on an unmarked 60 s clip: every search
    (two OCR reads, every watermark decode) runs to its end, the worst case."""
    from detectors.video import inspect_video

    path = work / "long.mp4"
    w, h = size
    _run([
        "-f", "lavfi", "-i", f"testsrc2=s={w}x{h}:r=30", "-f", "lavfi", "-i", "sine=d=60",
        "-t", "60", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast",
        "-crf", "23", "-g", "250", "-c:a", "aac", str(path),
    ])  # fmt: skip
    data = path.read_bytes()
    inspect_video(data, "video/mp4")  # warm-up: imports, OCR start-up
    cpu0, wall0 = time.process_time(), time.perf_counter()
    inspect_video(data, "video/mp4")
    return time.process_time() - cpu0, time.perf_counter() - wall0


def clip_job(i: int, kind: str, still: Path | None, size, seconds: float, key: int, work: Path):
    """Make clip ``i``, label and mark it, attack it; (name, results per attack, PSNR)."""
    from detectors.video import inspect_video
    from labelers.video import apply_video

    src = work / f"clip{i}.mp4"
    make_clip(src, kind, size, seconds, seed=i + 1, still=still)
    out = apply_video(src.read_bytes(), "video/mp4", wording=WORDING, position="bottom-right",
                      span="start", watermark_key=key)  # fmt: skip
    marked = work / f"marked{i}.mp4"
    marked.write_bytes(out.data)
    results = {"no attack": inspect_video(out.data, "video/mp4").watermark_key == key}
    for name, attack in attacks(size).items():
        dst = work / f"attacked{i}.mp4"
        _attack(marked, dst, attack)
        evidence = inspect_video(dst.read_bytes(), "video/mp4", read_label=False)
        results[name] = evidence.watermark_key == key
    unmarked = inspect_video(src.read_bytes(), "video/mp4", read_label=False).watermark_key
    name = kind if still is None else f"{kind}:{still.stem[6:]}"
    return name, results, _psnr(src.read_bytes(), key), unmarked is not None


_NULL_SIZES = [(640, 360), (480, 270), (854, 480), (480, 480), (360, 640), (320, 240)]


def null_job(j: int, kind: str, still: Path | None, work: Path) -> bool:
    """Whether the watermark search reports a key on unmarked clip ``j``."""
    from detectors.video import inspect_video

    path = work / f"null{j}.mp4"
    make_clip(path, kind, _NULL_SIZES[j % len(_NULL_SIZES)], 1.5, seed=100 + j, still=still)
    found = inspect_video(path.read_bytes(), "video/mp4", read_label=False).watermark_key
    path.unlink()
    return found is not None


def timing(args: argparse.Namespace) -> str:
    """Only the cost ratio (on a fresh 2 s clip like clip 0) and the verify time."""
    size = tuple(int(x) for x in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        piece = work / "piece.mp4"
        make_clip(piece, "testsrc2", size, 2.0, seed=1, still=None)
        cost = cost_ratio(piece, args.rounds)
        cpu, wall = verify_time(work, tuple(int(x) for x in args.verify_size.split("x")))
    lines = [f"Machine: {machine()}\n"]
    lines.append(cost_table(cost, f"what (2 s testsrc2 {args.size})"))
    lines.append(
        f"\nVerify a 60 s {args.verify_size} clip (unmarked, so every search runs to its end): "
        f"{cpu:.2f} s CPU (all threads), {wall:.2f} s wall."
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> str:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    size = tuple(int(x) for x in args.size.split("x"))
    rng = random.Random(20261202)
    names = ["no attack", *attacks(size)]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        stills = _corpus_stills(work)
        kinds = _kinds(args.clips, stills)
        keys = [rng.getrandbits(64) for _ in kinds]
        pool = ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn"))
        with pool:
            clip_futures = [
                pool.submit(clip_job, i, kind, still, size, args.seconds, keys[i], work)
                for i, (kind, still) in enumerate(kinds)
                if i >= args.skip
            ]
            null_kinds = _kinds(args.null, stills)
            null_futures = [
                pool.submit(null_job, j, kind, still, work)
                for j, (kind, still) in enumerate(null_kinds)
            ]
            clips = []
            for future in clip_futures:
                clips.append(future.result())
                name, results, _, _ = clips[-1]
                print(name, *("ok" if results[k] else "LOST" for k in names), flush=True)
            false_hits = 0
            for j, future in enumerate(null_futures, 1):
                false_hits += future.result()
                if j % 20 == 0:
                    print(f"unmarked clips: {false_hits} false of {j}", flush=True)
        false_sources = sum(c[3] for c in clips)
        # cost: the first clip's opening 2 s, alone on the machine's share
        piece = work / "piece.mp4"
        _run(["-i", str(work / f"clip{args.skip}.mp4"), "-t", "2", "-c", "copy", str(piece)])
        cost = cost_ratio(piece, args.rounds)
        verify = verify_time(work, tuple(int(x) for x in args.verify_size.split("x")))
    n = len(clips)
    hits = {k: sum(c[1][k] for c in clips) for k in names}
    psnrs = [c[2] for c in clips]
    lines = [f"Machine: {machine()}\n"]
    lines.append(cost_table(cost, f"what (2 s of clip {args.skip})"))
    lines.append("")
    lines.append(
        table(
            ["attack", f"exact key recovery ({n} clips, {size[0]}x{size[1]}, {args.seconds:g} s)"],
            [[k, f"{v}/{n}"] for k, v in hits.items()],
        )
    )
    lines.append("")
    lines.append(
        "Marked luma PSNR (12 frames per clip, before encoding): "
        f"min {min(p[0] for p in psnrs):.1f} dB, mean {np.mean([p[1] for p in psnrs]):.1f} dB."
    )
    lines.append(
        f"False detections: {false_hits} of {len(null_futures)} unmarked clips "
        f"(1.5 s, 320x240 to 854x480, the same sources), {false_sources} of {n} unmarked sources."
    )
    cpu, wall = verify
    lines.append(
        f"Verify a 60 s {args.verify_size} clip (unmarked, so every search runs to its end): "
        f"{cpu:.2f} s CPU (all threads), {wall:.2f} s wall."
    )
    lines.append("\n" + table(["clip", *names], [
        [c[0], *("ok" if c[1][k] else "LOST" for k in names)] for c in clips
    ]))  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=10)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--null", type=int, default=200)
    parser.add_argument("--verify-size", default="1920x1080")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--skip", type=int, default=0, help="skip the first N clips (same kinds, seeds and keys)"
    )
    parser.add_argument("--timing-only", action="store_true", help="cost ratio and verify time")
    parser.add_argument("--update-docs", action="store_true")
    args = parser.parse_args()
    report = timing(args) if args.timing_only else run(args)
    print(report)
    if args.update_docs:
        print("(docs/benchmarks.md: paste the report under '## Video signal')", file=sys.stderr)


if __name__ == "__main__":
    main()
