"""Regenerate the spoken-label clips in this directory (run by hand, never at run time).

    python labelers/visible/voice/make_clips.py

Each wording is spoken by espeak-ng's Mandarin voice (``-v cmn``); the speed
is searched so that the spoken part (leading and trailing silence trimmed)
lasts ``len(wording)`` characters at :data:`TARGET_CPM` characters a minute,
inside GB 45438's 120-160. The clip is written as 16-bit mono FLAC at
espeak-ng's 22,050 Hz, peak-normalised to -1 dBFS.
"""

from __future__ import annotations

import io
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from labelers.visible.audio import VOICE_CLIPS  # noqa: E402

TARGET_CPM = 140.0
SILENCE_DB = -40.0  # below the clip's peak: what "silence" is when trimming


def speak(text: str, speed: int) -> tuple[np.ndarray, int]:
    wav = subprocess.run(
        ["espeak-ng", "-v", "cmn", "-s", str(speed), "--stdout", text],
        check=True,
        capture_output=True,
    ).stdout
    with wave.open(io.BytesIO(wav)) as w:
        rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768
    return trim(x, rate), rate


def trim(x: np.ndarray, rate: int) -> np.ndarray:
    """The clip from its first to its last 10 ms frame within SILENCE_DB of the peak."""
    hop = rate // 100
    frames = x[: x.size // hop * hop].reshape(-1, hop)
    level = 20 * np.log10(np.sqrt(np.mean(frames**2, axis=1)) + 1e-12)
    loud = np.flatnonzero(level > level.max() + SILENCE_DB)
    return x[loud[0] * hop : (loud[-1] + 1) * hop]


def make(text: str) -> tuple[np.ndarray, int, int]:
    target = len(text) / TARGET_CPM * 60.0
    lo, hi = 60, 400  # espeak-ng words a minute
    while hi - lo > 1:
        mid = (lo + hi) // 2
        x, rate = speak(text, mid)
        if x.size / rate > target:
            lo = mid
        else:
            hi = mid
    best = min((lo, hi), key=lambda s: abs(speak(text, s)[0].size / 22050 - target))
    x, rate = speak(text, best)
    return x, rate, best


def main() -> None:
    import soundfile

    for text, name in VOICE_CLIPS.items():
        x, rate, speed = make(text)
        x = x / np.max(np.abs(x)) * 10 ** (-1 / 20)
        soundfile.write(HERE / name, x, rate, format="FLAC", subtype="PCM_16")
        cpm = len(text) / (x.size / rate) * 60
        print(f"{name}: {text} at espeak-ng -s {speed}: {x.size / rate:.2f} s, {cpm:.0f} chars/min")


if __name__ == "__main__":
    main()
