"""Signal evidence in audio: the Morse "AI" rhythm (the audible explicit label) and the watermark.

Bounded work on any file: the headers are checked against the limits, then
at most :data:`HEAD_S` seconds from the start and :data:`TAIL_S` from the end
are decoded; the watermark is read from the head alone (it repeats every
period over the whole programme), the rhythm from both.

The rhythm finder looks for any Morse "AI" (``·– ··``) played as a pure tone,
not only this project's (``labelers/visible/audio.py``: 800 Hz, 120 ms unit),
since other labellers choose their own tone and speed. Two stages:

1. *Candidates.* The audio is reduced to mono at :data:`_RATE` and cut into
   32 ms frames every 10 ms; a frame is *tonal* when one spectral peak between
   :data:`_F_LO` and :data:`_F_HI` holds at least :data:`_PURITY` of the
   frame's energy in that range (music and speech spread theirs over
   harmonics and formants; a ducked programme under a label tone does not
   reach it). Runs of tonal frames at one pitch are the tones; four of them
   in a row at the same pitch (within one frequency bin) and similar level,
   timed as dot-dash-dot-dot for a unit between :data:`_UNIT_MIN` and
   :data:`_UNIT_MAX` (dots 0.6-1.5 units, dash 2.2-4 units, gaps 0.5-2 units
   inside a letter, up to 4 between the letters) to within one frame (a run
   of frames times a tone only that well: a frame partly over the tone counts
   when little sounds under it, not when the programme does), with no tone
   of that pitch within two units before or after, are a candidate.
2. *Keying.* A candidate is a label only if the tone itself is keyed on and
   off, measured in a narrow band around its own frequency (complex
   demodulation, a Hann low-pass of 0.4 units, 16-48 ms):

   * in each of the three gaps the band's power falls at least
     :data:`_GAP_CONTRAST_DB` below the quietest of the four tones;
   * for :data:`_MARGIN_UNITS` units before the first tone and after the
     last, the band stays below the quietest tone (:data:`_MARGIN_CONTRAST_DB`);
     a side is exempt when the audio holds less than that margin there (the
     rhythm sits at the very start or end of what was decoded);
   * the four tones' frequencies (peak of each tone's zero-padded spectrum,
     interpolated) agree within :data:`_FREQ_SPREAD` of their median, at
     least :data:`_FREQ_SPREAD_HZ` (one oscillator plays them all);
   * each tone's edges, where the band falls to half the tone's amplitude
     (the symmetric low-pass puts that point on a keyed tone's true edge, to
     a few ms), are timed as dot-dash-dot-dot with the tolerances of stage 1
     and no slack; the reported span runs from the first edge to the last.
     This is what lets a short clip's fast rhythm (60 ms dots,
     ``labelers/visible/audio.py``) be read as surely as the standard one.

Why the keying stage bounds false alarms. Stage 1 looks at which sound
*dominates* each frame, so a programme can pass it without any keyed tone:
the one false alarm in 1,000 unmarked clips of the first full benchmark was a
held bass note (294 Hz) whose frames were tonal except where drum hits
covered it, the drum hits falling on dot-dash-dot-dot timing at the floor
unit (50 ms). The note never stopped: in the "gaps" its band was as loud as
in the "tones" (contrast -1.5 dB, and louder just before the first tone).
A tone that is keyed is silent in its own band between elements: our label
ducks the programme by ``DUCK_DB`` (12 dB) under a tone as loud as the
programme, so its gaps sit at least about 12 dB below the tones less the
programme's share of a 50 Hz band (measured over 20 speech and music clips
through MP3 128/64, AAC 96, Opus 48 and 16 kHz mono: >= 13.9 dB in every gap,
>= 3.5 dB in every margin, frequencies within 0.7 Hz). For a programme to
pass it must itself start and stop one partial four times on Morse timing,
with the partial absent for two units either side, at one frequency to 0.5 %:
a held note fails the gaps, a melody the frequency test, speech both. The
benchmark (``benchmarks/audio.py``) counts the rhythms found in unmarked
clips; the threshold was not fitted to any of them (the margins above are
from labelled clips).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import signal

from labelers import sound
from labelers.limits import DEFAULT_LIMITS, Limits

HEAD_S = 60.0
TAIL_S = 15.0

_RATE = 8000
_FRAME = 256  # 32 ms
_HOP = 80  # 10 ms
_F_LO, _F_HI = 250.0, 3500.0
_PURITY = 0.6
_PEAK_BINS = 2  # the tone's energy: its peak bin +- this many (the Hann main lobe)
_FLOOR_DB = -65.0  # frames quieter than this (dBFS in the band) are never tonal
_UNIT_MIN, _UNIT_MAX = 0.04, 0.25  # a 60 ms dot with 10 ms ramps is 50 ms at half amplitude
_MIN_RUN = 3  # frames: a shorter tonal run is the programme, not an element of a >= 40 ms unit
_LEVEL_SPREAD_DB = 6.0
# the keying stage (module doc)
_GAP_CONTRAST_DB = 8.0
_MARGIN_CONTRAST_DB = 0.0
_MARGIN_UNITS = 2.0
_FREQ_SPREAD = 0.005
_FREQ_SPREAD_HZ = 2.0
_ZERO_PAD = 1 << 15  # the tones' spectra: a 0.24 Hz grid at _RATE


@dataclass(frozen=True)
class AudioEvidence:
    """What the signal says: audible label spans, a watermark's key, notes for the report."""

    rhythm_spans: list[tuple[float, float]] = field(default_factory=list)  # seconds in the file
    watermark_key: int | None = None
    notes: list[str] = field(default_factory=list)


def _mono(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    mono = samples.mean(axis=0, dtype=np.float64) if samples.ndim == 2 else samples
    if rate != target:
        g = math.gcd(int(rate), target)
        mono = signal.resample_poly(mono, target // g, int(rate) // g)
    return mono


def _tonal_frames(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: peak bin (-1 when not tonal), tone level (dB), frame times (s)."""
    if x.size < _FRAME:
        return np.zeros(0, int), np.zeros(0), np.zeros(0)
    n = 1 + (x.size - _FRAME) // _HOP
    idx = np.arange(_FRAME)[None, :] + _HOP * np.arange(n)[:, None]
    spec = np.abs(np.fft.rfft(x[idx] * np.hanning(_FRAME), axis=1)) ** 2
    lo = int(_F_LO * _FRAME / _RATE)
    hi = int(_F_HI * _FRAME / _RATE)
    band = spec[:, lo:hi]
    total = band.sum(axis=1)
    peak = np.argmax(band, axis=1)
    c = np.cumsum(np.pad(band, ((0, 0), (_PEAK_BINS + 1, _PEAK_BINS))), axis=1)
    rows = np.arange(n)
    tone = c[rows, peak + 2 * _PEAK_BINS + 1] - c[rows, peak]
    norm = (np.hanning(_FRAME).sum() / 2) ** 2  # a full-scale sine's peak bin power
    with np.errstate(divide="ignore"):
        level = 10 * np.log10(np.maximum(total, 1e-30) / norm)
    tonal = (tone >= _PURITY * total) & (level > _FLOOR_DB)
    times = (np.arange(n) * _HOP + _FRAME / 2) / _RATE
    return np.where(tonal, peak + lo, -1), level, times


def _runs(bins: np.ndarray) -> list[tuple[int, int, int]]:
    """Runs of frames on one pitch: (first frame, frame count, bin); a bin step of one
    inside a run is allowed (a tone between two bins flickers)."""
    runs = []
    i, n = 0, bins.size
    while i < n:
        if bins[i] < 0:
            i += 1
            continue
        j = i + 1
        while j < n and bins[j] >= 0 and abs(int(bins[j]) - int(bins[i])) <= 1:
            j += 1
        runs.append((i, j - i, int(np.median(bins[i:j]))))
        i = j
    return runs


def _morse_unit(d: list[float], g: list[float], slack: float = 0.0) -> float | None:
    """The unit of four tones of lengths ``d`` and three gaps ``g`` (seconds) timed as
    dot-dash-dot-dot, else None; each length may be off by ``slack`` seconds."""
    unit = float(np.median([d[0], d[2], d[3]]))
    if not _UNIT_MIN - slack <= unit <= _UNIT_MAX + slack:
        return None

    def within(v: float, lo: float, hi: float) -> bool:
        return lo * unit - slack <= v <= hi * unit + slack

    ok = (
        all(within(d[i], 0.6, 1.5) for i in (0, 2, 3))
        and within(d[1], 2.2, 4.0)
        and within(g[0], 0.5, 2.0)
        and within(g[2], 0.5, 2.0)
        and within(g[1], 0.5, 4.0)
    )
    return unit if ok else None


def _tone_frequency(x: np.ndarray, run: tuple[int, int, int]) -> float:
    """The frequency of one tone (Hz): the peak of its Hann-windowed, zero-padded spectrum
    near the run's bin, refined by a parabola through the log magnitudes."""
    a, b = run[0] * _HOP, (run[0] + run[1] - 1) * _HOP + _FRAME
    spec = np.abs(np.fft.rfft(x[a:b] * np.hanning(b - a), _ZERO_PAD))
    per_bin = _ZERO_PAD / _FRAME  # fine bins per frame bin
    lo = max(1, int((run[2] - 1.5) * per_bin))
    hi = min(spec.size - 1, int((run[2] + 1.5) * per_bin))
    k = lo + int(np.argmax(spec[lo:hi]))
    left, mid, right = np.log(spec[k - 1 : k + 2] + 1e-30)
    curve = left - 2 * mid + right
    shift = 0.5 * (left - right) / curve if curve < 0 else 0.0
    return float((k + shift) * _RATE / _ZERO_PAD)


def _band_power(x: np.ndarray, hz: float, width: int) -> np.ndarray:
    """Per sample, the power in a narrow band around ``hz`` (1.0 for a unit sine):
    ``x`` shifted down by ``hz`` and low-passed by a ``width``-sample Hann window."""
    n = np.arange(x.size)
    base = x * np.exp(-2j * np.pi * hz * n / _RATE)
    h = np.hanning(width)
    return 4 * np.abs(np.convolve(base, h / h.sum(), mode="same")) ** 2


def _keyed(
    x: np.ndarray, four: list[tuple[int, int, int]], unit: float
) -> tuple[float, float] | None:
    """Where the rhythm starts and ends in ``x`` (seconds) if the four tones are one tone
    keyed on and off on Morse timing (module doc, stage 2), else None."""
    freqs = [_tone_frequency(x, r) for r in four]
    hz = float(np.median(freqs))
    if max(freqs) - min(freqs) > max(_FREQ_SPREAD_HZ, _FREQ_SPREAD * hz):
        return None
    width = int(np.clip(0.4 * unit, 0.016, 0.048) * _RATE)
    margin = round(_MARGIN_UNITS * unit * _RATE)
    # each tone as its tonal frames cover it (first window's start to last window's end)
    spans = [(r[0] * _HOP, (r[0] + r[1] - 1) * _HOP + _FRAME) for r in four]
    lo, hi = max(0, spans[0][0] - margin), min(x.size, spans[-1][1] + margin)
    power = _band_power(x[lo:hi], hz, width)

    def at(a: int, b: int) -> float:
        """Median power over the samples [a, b) of ``x`` (its middle one if empty)."""
        a, b = a - lo, b - lo
        if b <= a:
            return float(power[min(power.size - 1, max(0, (a + b) // 2))])
        return float(np.median(power[a:b]))

    def quiet(a: int, b: int) -> float:
        """Power where the low-pass window lies wholly inside [a, b)."""
        return at(a + width // 2, b - width // 2)

    def db(v: float) -> float:
        return 10 * math.log10(max(v, 1e-20))

    # a tone: over its tonal frames' centres (each of those frames is mostly tone)
    levels = [at(a + _FRAME // 2, b - _FRAME // 2 + 1) for a, b in spans]
    tone = db(min(levels))
    gaps = [db(quiet(spans[i][1], spans[i + 1][0])) for i in range(3)]
    if max(gaps) > tone - _GAP_CONTRAST_DB:
        return None
    sides = []
    if spans[0][0] - margin >= 0:
        sides.append(db(quiet(spans[0][0] - margin, spans[0][0])))
    if spans[-1][1] + margin <= x.size:
        sides.append(db(quiet(spans[-1][1], spans[-1][1] + margin)))
    if any(side > tone - _MARGIN_CONTRAST_DB for side in sides):
        return None
    # each tone's edges: where the band falls to half its amplitude (a quarter of its
    # power); the symmetric low-pass puts that point on the true edge of a keyed tone
    edges = []
    centres = [(a + b) // 2 - lo for a, b in spans]
    # between two tones: the middle of the gap their frame runs leave
    bounds = [0, *((spans[i][1] + spans[i + 1][0]) // 2 - lo for i in range(3)), power.size]
    for i, c in enumerate(centres):
        half = power[bounds[i] : bounds[i + 1]] < 0.25 * levels[i]
        left, right = half[: c - bounds[i]], half[c - bounds[i] :]
        inner_left, inner_right = bounds[i] > 0, bounds[i + 1] < power.size
        if (inner_left and not left.any()) or (inner_right and not right.any()):
            return None  # the band never fell between two tones
        a = bounds[i] + (int(np.flatnonzero(left)[-1]) + 1 if left.any() else 0)
        b = c + (int(np.flatnonzero(right)[0]) if right.any() else right.size)
        edges.append((a + lo, b + lo))
    d = [(b - a) / _RATE for a, b in edges]
    g = [(edges[i + 1][0] - edges[i][1]) / _RATE for i in range(3)]
    if _morse_unit(d, g) is None:
        return None
    return edges[0][0] / _RATE, edges[-1][1] / _RATE


def find_rhythm(samples: np.ndarray, rate: int, offset: float = 0.0) -> list[tuple[float, float]]:
    """Spans (start, end, seconds + ``offset``) of Morse "AI" rhythms in ``samples``."""
    x = _mono(samples, rate, _RATE)
    bins, level, _ = _tonal_frames(x)
    runs = [r for r in _runs(bins) if r[1] >= _MIN_RUN]
    dt = _HOP / _RATE
    spans = []
    for k, head in enumerate(runs):
        # the label's tones at one pitch; in its gaps the programme may sound (other
        # pitches, or a blip near this one: an element is at least 0.4 of the first dot,
        # as dots are 0.6-1.5 units and the dash longer)
        same = [
            r for r in runs[k:] if abs(r[2] - head[2]) <= 1 and (r is head or r[1] >= 0.4 * head[1])
        ][:8]
        if len(same) < 4:
            continue
        four = same[:4]
        # frame runs time a tone to within about a frame (a frame that partly covers
        # the tone is tonal when little sounds under it, not when the programme does):
        # a first, loose test; the keying stage times the tones to a few ms
        d = [r[1] * dt for r in four]
        g = [(four[i + 1][0] - four[i][0] - four[i][1]) * dt for i in range(3)]
        coarse = _morse_unit(d, g, slack=_FRAME / _RATE)
        if coarse is None:
            continue
        unit = max(coarse, _UNIT_MIN)
        levels = [float(np.median(level[r[0] : r[0] + r[1]])) for r in four]
        if max(levels) - min(levels) > _LEVEL_SPREAD_DB:
            continue
        # no other Morse element at this pitch within two units (the rhythm is the word
        # "AI", not part of a longer message); shorter blips are the programme's
        isolation, element = 2 * unit / dt, 0.5 * unit / dt
        before = [r for r in runs[:k] if abs(r[2] - head[2]) <= 1 and r[1] >= element]
        if before and head[0] - sum(before[-1][:2]) < isolation:
            continue
        after = [r for r in same[4:] if r[1] >= element]
        if after and after[0][0] - sum(four[3][:2]) < isolation:
            continue
        edges = _keyed(x, four, unit)
        if edges is None:
            continue
        start, end = edges
        spans.append((round(float(offset + start), 3), round(float(offset + end), 3)))
    return spans


def inspect_audio(data: bytes, media_type: str, limits: Limits = DEFAULT_LIMITS) -> AudioEvidence:
    """The rhythm spans and the watermark key of an audio file (bounded work, see module doc).

    Raises the same errors as :func:`labelers.sound.decode` for damaged input or
    a file over the limits.
    """
    from labelers.watermark import audio as audio_watermark

    info = sound.probe(data, media_type, limits)
    head = sound.decode(data, media_type, limits, seconds=HEAD_S)
    notes = []
    spans = find_rhythm(head.samples, head.rate, head.start)
    if info.duration is not None and info.duration > HEAD_S:
        tail = sound.decode(data, media_type, limits, start=-TAIL_S, seconds=TAIL_S)
        spans += [s for s in find_rhythm(tail.samples, tail.rate, tail.start) if s[0] >= HEAD_S]
        notes.append(
            f"read the first {HEAD_S:.0f} s and the last {TAIL_S:.0f} s of "
            f"{info.duration:.0f} s of audio"
        )
    key = None
    if head.seconds >= audio_watermark.MIN_DECODE_SECONDS:
        found = audio_watermark.decode(head.samples, head.rate)
        key = found.payload if found is not None else None
    else:
        notes.append(
            f"{head.seconds:.1f} s of audio is too short to read an audio watermark "
            f"(needs {audio_watermark.MIN_DECODE_SECONDS:.0f} s)"
        )
    return AudioEvidence(rhythm_spans=spans, watermark_key=key, notes=notes)
