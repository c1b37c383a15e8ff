"""Generated audio for tests and benchmarks: speech (espeak-ng), music (synthesised), attacks.

Nothing here is fixed data: every clip comes from a seed, so a benchmark can
make as many as it needs and a test a short one.
"""

from __future__ import annotations

import io
import math
import shutil
import subprocess
import wave

import numpy as np
from scipy import signal

SENTENCES_EN = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Please remember to bring the documents to the meeting tomorrow morning.",
    "Weather forecasts predict heavy rain across the northern provinces tonight.",
    "She sells sea shells by the sea shore, and the shells she sells are surely seashells.",
    "A journey of a thousand miles begins with a single step.",
    "Our new service labels generated content so that platforms can recognise it.",
    "The train to Shanghai leaves at half past seven from platform nine.",
    "Scientists discovered a new species of frog in the tropical forest.",
]
SENTENCES_ZH = [
    "今天天气很好，我们去公园散步吧。",
    "请在明天上午十点之前提交报告。",
    "这家餐厅的饺子非常好吃，价格也很便宜。",
    "科学家们在深海发现了一种新的鱼类。",
    "火车将在七点半从北京站出发。",
    "人工智能技术正在改变我们的生活方式。",
]
VOICES = ["en", "en-us", "en-gb-x-rp", "cmn", "cmn", "de", "fr"]


def have_espeak() -> bool:
    return shutil.which("espeak-ng") is not None


def _espeak(text: str, voice: str, speed: int, pitch: int) -> tuple[np.ndarray, int]:
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
        check=True,
        capture_output=True,
    ).stdout
    with wave.open(io.BytesIO(wav)) as w:
        rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768
    return x, rate


def _resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return x
    g = math.gcd(rate, target)
    return signal.resample_poly(x, target // g, rate // g, axis=-1)


def speech(seed: int, seconds: float, rate: int = 44100, channels: int = 1) -> np.ndarray:
    """(channels, n) float32: espeak-ng sentences with pauses, room tone under them."""
    rng = np.random.default_rng(seed)
    voice = VOICES[seed % len(VOICES)]
    lines = SENTENCES_ZH if voice == "cmn" else SENTENCES_EN
    n = int(seconds * rate)
    out = np.zeros(n)
    pos = int(rng.uniform(0.0, 0.5) * rate)
    while pos < n:
        text = lines[int(rng.integers(len(lines)))]
        x, r = _espeak(text, voice, int(rng.integers(130, 190)), int(rng.integers(30, 70)))
        x = _resample(x, r, rate)
        take = min(x.size, n - pos)
        out[pos : pos + take] += x[:take]
        pos += take + int(rng.uniform(0.2, 0.8) * rate)
    out += 10 ** (-62 / 20) * rng.standard_normal(n)  # a quiet room, not digital silence
    out *= 10 ** (rng.uniform(-12, -3) / 20) / max(1e-9, float(np.max(np.abs(out))))
    return np.repeat(out[None, :], channels, axis=0).astype(np.float32)


def music(seed: int, seconds: float, rate: int = 44100, channels: int = 2) -> np.ndarray:
    """(channels, n) float32: chords with harmonics, a bass line, drums, reverb, stereo."""
    rng = np.random.default_rng(seed + 1000)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    bpm = rng.uniform(70, 150)
    beat = 60.0 / bpm
    root = 110.0 * 2 ** (rng.integers(-5, 7) / 12)
    scale = np.array([0, 2, 4, 5, 7, 9, 11])
    left = np.zeros(n)
    right = np.zeros(n)
    bright = rng.uniform(0.8, 2.0)  # harmonic roll-off exponent: timbre
    # chords, one per bar
    bar = 4 * beat
    for b in range(int(seconds / bar) + 1):
        degree = int(rng.integers(0, 7))
        notes = [scale[(degree + k) % 7] + 12 * ((degree + k) // 7) for k in (0, 2, 4)]
        t0 = b * bar
        i0, i1 = int(t0 * rate), min(n, int((t0 + bar) * rate))
        if i0 >= n:
            break
        tt = t[i0:i1] - t0
        env = (1 - np.exp(-tt / 0.02)) * np.exp(-tt / rng.uniform(0.8, 3.0))
        for k, semi in enumerate(notes):
            f = root * 2 * 2 ** (semi / 12)
            tone = sum(
                np.sin(2 * np.pi * f * h * tt + rng.uniform(0, 6.28)) / h**bright
                for h in range(1, 12)
                if f * h < rate / 2.2
            )
            pan = 0.3 + 0.4 * k / 2
            left[i0:i1] += 0.25 * env * tone * (1 - pan)
            right[i0:i1] += 0.25 * env * tone * pan
    # melody and bass, one note a beat
    for k in range(int(seconds / beat) + 1):
        t0 = k * beat
        i0 = int(t0 * rate)
        if i0 >= n:
            break
        i1 = min(n, int((t0 + beat) * rate))
        tt = t[i0:i1] - t0
        if rng.random() < 0.8:
            f = root * 4 * 2 ** (scale[int(rng.integers(0, 7))] / 12)
            vib = 1 + 0.004 * np.sin(2 * np.pi * 5.5 * tt)
            env = np.minimum(1, tt / 0.01) * np.exp(-tt / (0.6 * beat))
            tone = sum(np.sin(2 * np.pi * f * h * vib * tt) / h**1.5 for h in range(1, 6))
            left[i0:i1] += 0.2 * env * tone
            right[i0:i1] += 0.15 * env * tone
        fb = root / 2 * 2 ** (scale[int(rng.integers(0, 5))] / 12)
        env = np.exp(-tt / (0.5 * beat))
        bass = 0.35 * env * (np.sin(2 * np.pi * fb * tt) + 0.3 * np.sin(4 * np.pi * fb * tt))
        left[i0:i1] += bass
        right[i0:i1] += bass
        # drums: kick on the beat, snare on 2 and 4, hats on eighths
        m = min(i1 - i0, int(0.3 * rate))
        tk = tt[:m]
        kick = np.sin(2 * np.pi * (50 * tk + 60 * (1 - np.exp(-tk / 0.03)))) * np.exp(-tk / 0.12)
        left[i0 : i0 + m] += 0.5 * kick
        right[i0 : i0 + m] += 0.5 * kick
        if k % 2 == 1:
            sn = rng.standard_normal(m) * np.exp(-tk / 0.06) * 0.25
            left[i0 : i0 + m] += sn
            right[i0 : i0 + m] += sn
        for half in (0, 1):
            h0 = i0 + int(half * beat / 2 * rate)
            hm = min(n - h0, int(0.05 * rate))
            if hm > 0:
                hat = np.diff(rng.standard_normal(hm + 1)) * np.exp(-np.arange(hm) / (0.01 * rate))
                left[h0 : h0 + hm] += 0.08 * hat
                right[h0 : h0 + hm] += 0.06 * hat
    # a short reverb tail (decaying noise impulse response)
    ir_n = int(0.4 * rate)
    ir = rng.standard_normal(ir_n) * np.exp(-np.arange(ir_n) / (0.08 * rate)) * 0.03
    ir[0] = 1.0
    left = signal.fftconvolve(left, ir)[:n]
    right = signal.fftconvolve(right, ir)[:n]
    out = np.stack([left, right])
    out *= 10 ** (rng.uniform(-8, -1) / 20) / max(1e-9, float(np.max(np.abs(out))))
    if channels == 1:
        out = out.mean(axis=0, keepdims=True)
    return out.astype(np.float32)


# ------------------------------------------------------------------- attacks


def _codec_roundtrip(
    x: np.ndarray, rate: int, codec: str, bit_rate: int, fmt: str, out_rate: int | None = None
) -> tuple[np.ndarray, int]:
    """Encode with PyAV (FFmpeg) and decode again: what a re-upload does."""
    import av

    layout = "mono" if x.shape[0] == 1 else "stereo"
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        r = out_rate or rate
        st = out.add_stream(codec, rate=r, layout=layout)
        st.bit_rate = bit_rate
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(np.clip(x, -1, 1), dtype=np.float32), format="fltp", layout=layout
        )
        frame.sample_rate = rate
        for p in st.encode(frame):
            out.mux(p)
        for p in st.encode(None):
            out.mux(p)
    buf.seek(0)
    chunks = []
    with av.open(buf) as inp:
        s = inp.streams.audio[0]
        res = av.AudioResampler(format="fltp", layout=layout, rate=s.rate)
        for fr in inp.decode(s):
            chunks += [o.to_ndarray() for o in res.resample(fr)]
        dec_rate = s.rate
    return np.concatenate(chunks, axis=1), dec_rate


def attacks() -> dict[str, callable]:
    """name -> f(samples, rate) -> (samples, rate): the watermark's robustness list."""

    def mp3(kbps):
        return lambda x, r: _codec_roundtrip(x, r, "libmp3lame", kbps * 1000, "mp3")

    def resample16_mono(x, r):
        return _resample(x.mean(axis=0, dtype=np.float64), r, 16000)[None, :], 16000

    def cut_first_10(x, r):
        return x[:, x.shape[1] // 10 :], r

    def middle_30s(x, r):
        n = min(x.shape[1], 30 * r)
        i = (x.shape[1] - n) // 2
        return x[:, i : i + n], r

    def noise(x, r):
        rng = np.random.default_rng(7)
        rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
        return x + (rms * 10 ** (-35 / 20) * rng.standard_normal(x.shape)).astype(np.float32), r

    return {
        "mp3_128": mp3(128),
        "mp3_64": mp3(64),
        "aac_96": lambda x, r: _codec_roundtrip(x, r, "aac", 96000, "adts"),
        "opus_48": lambda x, r: _codec_roundtrip(x, r, "libopus", 48000, "ogg", out_rate=48000),
        "resample_16k_mono": resample16_mono,
        "cut_first_10pct": cut_first_10,
        "middle_30s": middle_30s,
        "volume_+6dB": lambda x, r: (np.clip(x * 2.0, -1, 1), r),
        "volume_-6dB": lambda x, r: (x * 0.5, r),
        "noise_35dB": noise,
    }
