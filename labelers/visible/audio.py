"""The audible explicit label (GB 45438 clause 5): the Morse "AI" rhythm or the spoken wording.

The standard fixes no tone or timing for the rhythm short-long-short-short;
this module's choice, which ``detectors/audio.py`` looks for:

* a pure tone of :data:`TONE_HZ` (800 Hz), dots of :data:`DOT_S` (120 ms),
  the dash :data:`DASH_S` (360 ms), every gap :data:`GAP_S` (120 ms): ``·– ··``
  lasts :data:`RHYTHM_S` (1.08 s);
* each tone rises and falls over :data:`RAMP_S` (10 ms, raised cosine), so it
  starts and stops without a click;
* mixed over the programme, which is ducked by :data:`DUCK_DB` (12 dB, with
  :data:`DUCK_RAMP_S` ramps) while the label sounds, at a loudness of
  :data:`LABEL_OFFSET_LU` (0 LU) relative to the programme's integrated
  loudness (ITU-R BS.1770 K-weighted, gated; measured on at most
  :data:`_LOUDNESS_BLOCKS` blocks spread over the programme, so an hour costs
  no more than a minute). A silent programme gets the label at
  :data:`SILENT_PROGRAMME_LUFS`.
* placed :data:`EDGE_S` (0.1 s) after the start and/or before the end.

A clip too short for that (under :func:`rhythm_need` = 1.31 s at one end,
2.78 s at both) gets the same rhythm played faster: every length (tones,
gaps, the edge; not the 10 ms ramps) scaled by one factor, the unit
shortened until it fits but never below :data:`MIN_DOT_S` (60 ms, 20 words
a minute in Morse terms; with its ramps a 60 ms dot is 50 ms at half
amplitude, and the finder reads units from 40 ms, which leaves room for
codecs smearing the edges). The shortest clip that takes the rhythm is then 0.67 s at one end
and 1.42 s at both (one word of speech, a short jingle); a shorter one is
refused (InvalidOption, a 422) with that floor in the message. At both ends
the two rhythms are at least :data:`SEPARATION_UNITS` units apart, so each
stands alone for the finder.

Where the label must not cover the content (a notification sound of 0.2 s,
a jingle whose every note matters) the caller asks for it *outside* the
clip: place ``before`` or ``after`` plays the label, at its standard form,
:data:`EDGE_S` from the new start (or end) and :data:`PAUSE_S` apart from
the programme, which is not ducked; the output is longer by
:func:`extension_s`. Only on request: a file's length is never changed
otherwise.

The spoken label plays a clip shipped in ``labelers/visible/voice/`` (made
offline with espeak-ng at ~140 characters a minute, see its README); nothing
is synthesised at run time. Clips exist for the wordings in :data:`VOICE_CLIPS`.
"""

from __future__ import annotations

import math
from functools import lru_cache
from importlib import resources

import numpy as np
from scipy import signal

from labelers.errors import InvalidOption
from labelers.visible.wording import DEFAULT_WORDING, resolve_wording

TONE_HZ = 800.0
DOT_S = 0.120
DASH_S = 0.360
GAP_S = 0.120
#: the rhythm as (start, length) of each tone, seconds from the label's start
RHYTHM_TONES = (
    (0.0, DOT_S),
    (DOT_S + GAP_S, DASH_S),
    (DOT_S + GAP_S + DASH_S + GAP_S, DOT_S),
    (2 * DOT_S + 2 * GAP_S + DASH_S + GAP_S, DOT_S),
)
RHYTHM_S = RHYTHM_TONES[-1][0] + RHYTHM_TONES[-1][1]
RHYTHM_UNITS = RHYTHM_S / DOT_S  # 9: the rhythm's length in units
MIN_DOT_S = 0.060
SEPARATION_UNITS = 3.0  # between the two rhythms at both ends: the finder wants two silent
#: places that mix the label into the programme, and those that add it outside (longer file)
MIX_PLACES = ("start", "end", "both")
EXTEND_PLACES = ("before", "after")
PAUSE_S = 0.3  # between a label outside the clip and the programme
RAMP_S = 0.010
DUCK_DB = 12.0
DUCK_RAMP_S = 0.030
LABEL_OFFSET_LU = 0.0
SILENT_PROGRAMME_LUFS = -20.0
EDGE_S = 0.1
_PEAK = 0.98  # the label region is scaled down if the mix would clip

#: wording -> shipped clip (labelers/visible/voice/)
VOICE_CLIPS = {
    "人工智能生成": "rengong-zhineng-shengcheng.flac",
    "AI生成": "ai-shengcheng.flac",
    "人工智能合成": "rengong-zhineng-hecheng.flac",
    "AI合成": "ai-hecheng.flac",
}

_LOUDNESS_BLOCKS = 600  # 400 ms blocks: 4 minutes' worth at most


# --------------------------------------------------------------------- loudness


@lru_cache(maxsize=16)
def _k_weighting(rate: int) -> np.ndarray:
    """BS.1770 K-weighting (high shelf + high pass) as second-order sections for ``rate``.

    Both biquads come from their analogue prototypes by the bilinear transform
    (corner frequencies, gain and Q as libebur128 derives them), so any rate
    gets the filter BS.1770 tabulates for 48 kHz.
    """
    # high shelf: about +4 dB above ~1.7 kHz (the head's acoustic effect)
    f0, g, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / rate)
    vh = 10 ** (g / 20)
    vb = vh**0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf = [
        (vh + vb * k / q + k * k) / a0,
        2 * (k * k - vh) / a0,
        (vh - vb * k / q + k * k) / a0,
        1.0,
        2 * (k * k - 1) / a0,
        (1 - k / q + k * k) / a0,
    ]
    # high pass at ~38 Hz (RLB weighting)
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / rate)
    a0 = 1 + k / q + k * k
    high_pass = [1.0, -2.0, 1.0, 1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]
    return np.array([shelf, high_pass])


def loudness(samples: np.ndarray, rate: int) -> float:
    """Integrated loudness in LUFS (BS.1770 gating), -inf for silence.

    Long programmes are measured on :data:`_LOUDNESS_BLOCKS` 400 ms blocks
    spread evenly over them (each filtered with a short lead-in), which
    estimates the same gated mean at bounded cost.
    """
    block = int(0.4 * rate)
    n = samples.shape[1]
    if n < block:
        block = n
    if block == 0:
        return -math.inf
    sos = _k_weighting(rate)
    hop = max(1, block // 4)  # 75 % overlap, as BS.1770
    starts = np.arange(0, n - block + 1, hop)
    if starts.size > _LOUDNESS_BLOCKS:
        starts = np.linspace(0, n - block, _LOUDNESS_BLOCKS).astype(int)
        lead = int(0.05 * rate)
        powers = []
        for s in starts:
            lo = max(0, s - lead)
            z = signal.sosfilt(sos, samples[:, lo : s + block], axis=1)[:, s - lo :]
            powers.append(float(np.sum(np.mean(z.astype(np.float64) ** 2, axis=1))))
        p = np.array(powers)
    else:
        z = signal.sosfilt(sos, samples, axis=1).astype(np.float64) ** 2
        c = np.concatenate([np.zeros((z.shape[0], 1)), np.cumsum(z, axis=1)], axis=1)
        p = np.sum((c[:, starts + block] - c[:, starts]) / block, axis=0)
    with np.errstate(divide="ignore"):
        lk = -0.691 + 10 * np.log10(p)
    kept = p[lk > -70.0]
    if kept.size == 0:
        return -math.inf
    rel = -0.691 + 10 * math.log10(float(np.mean(kept))) - 10.0
    with np.errstate(divide="ignore"):
        kept = p[(lk > -70.0) & (lk > rel)]
    return -0.691 + 10 * math.log10(float(np.mean(kept)))


# --------------------------------------------------------------------- signals


def rhythm(rate: int, unit: float = DOT_S) -> np.ndarray:
    """The Morse "AI" rhythm at unit peak amplitude, mono: :data:`RHYTHM_S` long, or
    scaled to a dot of ``unit`` seconds (the ramps stay :data:`RAMP_S`)."""
    scale = unit / DOT_S
    out = np.zeros(round(RHYTHM_S * scale * rate), dtype=np.float64)
    ramp = round(RAMP_S * rate)
    for start, length in RHYTHM_TONES:
        i0, n = round(start * scale * rate), round(length * scale * rate)
        t = np.arange(n) / rate
        env = np.ones(n)
        r = np.arange(ramp) / ramp
        env[:ramp] = 0.5 - 0.5 * np.cos(np.pi * r)
        env[n - ramp :] = env[:ramp][::-1]
        # the phase restarts with each tone: every tone is the same waveform
        out[i0 : i0 + n] = env * np.sin(2 * np.pi * TONE_HZ * t)
    return out


def rhythm_need(place: str, unit: float = DOT_S) -> float:
    """Seconds of audio the rhythm at ``place`` needs with a dot of ``unit``: the edges,
    the rhythm(s), the ducking ramps and, at both ends, the separation."""
    scale = unit / DOT_S
    count = 2 if place == "both" else 1
    need = 2 * EDGE_S * scale + count * (RHYTHM_S * scale + DUCK_RAMP_S)
    if count == 2:
        need += SEPARATION_UNITS * unit
    return need


def rhythm_unit(seconds: float, place: str) -> float:
    """The dot length for a clip of ``seconds``: :data:`DOT_S`, or shorter down to
    :data:`MIN_DOT_S` when the clip is too short for it (module doc).

    Raises InvalidOption below the floor.
    """
    if place in EXTEND_PLACES or seconds >= rhythm_need(place):
        return DOT_S
    # rhythm_need is affine in the unit: solve need(unit) = seconds
    fixed = rhythm_need(place, 0.0)
    per_unit = (rhythm_need(place) - fixed) / DOT_S
    unit = (seconds - fixed) / per_unit
    if unit < MIN_DOT_S:
        floor = rhythm_need(place, MIN_DOT_S)
        raise InvalidOption(
            f"audio of {seconds:.2f} s is too short for the audible label at {place}: the "
            f"Morse rhythm needs at least {floor:.2f} s even at its fastest "
            f"({MIN_DOT_S * 1000:.0f} ms dots; {rhythm_need(place):.2f} s at the standard "
            f"{DOT_S * 1000:.0f} ms); position=before or after plays it outside the clip, "
            f"which becomes {extension_s('rhythm', 1):.2f} s longer"
        )
    return math.floor(unit * 1000) / 1000  # whole milliseconds, never longer than fits


def voice_wordings() -> tuple[str, ...]:
    return tuple(VOICE_CLIPS)


@lru_cache(maxsize=8)
def _voice_clip(name: str, rate: int) -> np.ndarray:
    from labelers import sound

    data = resources.files("labelers.visible").joinpath("voice", name).read_bytes()
    pcm = sound.decode(data, "audio/flac")
    mono = pcm.samples.mean(axis=0).astype(np.float64)
    if pcm.rate != rate:
        g = math.gcd(pcm.rate, rate)
        mono = signal.resample_poly(mono, rate // g, pcm.rate // g)
    mono /= max(1e-9, float(np.max(np.abs(mono))))
    mono.setflags(write=False)
    return mono


def speech(wording: str | None, rate: int) -> np.ndarray:
    """The shipped spoken clip for ``wording`` at ``rate``, unit peak, mono."""
    text = resolve_wording(wording) if wording else DEFAULT_WORDING
    name = VOICE_CLIPS.get(text)
    if name is None:
        raise InvalidOption(
            f"no spoken label is shipped for the wording {text!r}; spoken labels exist for "
            + ", ".join(VOICE_CLIPS)
            + " (or use the rhythm)"
        )
    return _voice_clip(name, rate)


# --------------------------------------------------------------------- mixing


def extension_s(kind: str, rate: int, wording: str | None = None) -> float:
    """How much longer place ``before``/``after`` makes a clip: edge, label, pause."""
    length = RHYTHM_S if kind == "rhythm" else speech(wording, rate).size / rate
    return EDGE_S + length + PAUSE_S


def _outside(
    samples: np.ndarray, rate: int, label: np.ndarray, gain: float, place: str
) -> np.ndarray:
    """The label in silence before or after the programme (EXTEND_PLACES)."""
    channels = samples.shape[0]
    edge = np.zeros((channels, round(EDGE_S * rate)), np.float32)
    pause = np.zeros((channels, round(PAUSE_S * rate)), np.float32)
    sting = np.repeat((min(gain, _PEAK) * label)[None, :], channels, axis=0).astype(np.float32)
    parts = [edge, sting, pause, samples] if place == "before" else [samples, pause, sting, edge]
    return np.concatenate([p.astype(np.float32, copy=False) for p in parts], axis=1)


def label_spans(seconds: float, length: float, place: str, edge: float = EDGE_S) -> list[float]:
    """Where the label starts, seconds, for each placement."""
    starts = []
    if place in ("start", "both"):
        starts.append(edge)
    if place in ("end", "both"):
        starts.append(seconds - edge - length)
    return starts


def add_audible(
    samples: np.ndarray, rate: int, kind: str, place: str, wording: str | None = None
) -> np.ndarray:
    """``samples`` (channels, n) with the audible label mixed in at ``place`` (or, for
    ``before``/``after``, added outside the programme: the result is longer)."""
    if place not in MIX_PLACES + EXTEND_PLACES:
        raise InvalidOption(
            f"audible label place must be one of {', '.join(MIX_PLACES + EXTEND_PLACES)}"
        )
    seconds = samples.shape[1] / rate
    if kind == "rhythm":
        unit = rhythm_unit(seconds, place)
        label = rhythm(rate, unit)
        edge = EDGE_S * unit / DOT_S
    else:
        label, edge = speech(wording, rate), EDGE_S
    length = label.size / rate
    starts = label_spans(seconds, length, place, edge)
    need = len(starts) * (length + DUCK_RAMP_S) + 2 * edge
    if place in MIX_PLACES and seconds < need:
        raise InvalidOption(
            f"audio of {seconds:.2f} s is too short for the audible label at {place} "
            f"(needs at least {need:.2f} s)"
        )
    programme = loudness(samples, rate)
    target = (programme if math.isfinite(programme) else SILENT_PROGRAMME_LUFS) + LABEL_OFFSET_LU
    # the label's own loudness: every channel carries it
    tiled = np.repeat(label[None, :], samples.shape[0], axis=0)
    own = loudness(tiled, rate) if kind == "speech" else _tone_loudness(rate, samples.shape[0])
    gain = 10 ** ((target - own) / 20)
    if place in EXTEND_PLACES:
        return _outside(samples, rate, label, gain, place)
    out = samples.astype(np.float32, copy=True)
    duck = 10 ** (-DUCK_DB / 20)
    ramp = round(DUCK_RAMP_S * rate)
    for start in starts:
        i0 = round(start * rate)
        i1 = i0 + label.size
        lo, hi = max(0, i0 - ramp), min(out.shape[1], i1 + ramp)
        env = np.ones(hi - lo)
        env[i0 - lo : i1 - lo] = duck
        r = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
        env[: i0 - lo] = 1 - (1 - duck) * r[: i0 - lo]
        env[i1 - lo :] = duck + (1 - duck) * r[: hi - i1]
        region = out[:, lo:hi] * env
        under = float(np.max(np.abs(region[:, i0 - lo : i1 - lo])))
        # a programme loud even when ducked: the label gives way rather than clip
        g = min(gain, max(0.0, _PEAK - under))
        region[:, i0 - lo : i1 - lo] += g * label
        out[:, lo:hi] = region
    return out


@lru_cache(maxsize=16)
def _tone_loudness(rate: int, channels: int) -> float:
    """Loudness of the steady tone at unit peak (what the dots and dash sound like)."""
    t = np.arange(int(0.8 * rate)) / rate
    tone = np.repeat(np.sin(2 * np.pi * TONE_HZ * t)[None, :], channels, axis=0)
    return loudness(tone, rate)
