"""The project's inaudible audio watermark: embed and decode the 64-bit ledger key.

The payload is framed exactly as the image mark frames it (64 bits + CRC-24,
rate-1/3 K=7 convolutional code, soft Viterbi: the channel code is imported
from ``labelers.watermark.image``, its one home), and carried by a
spread-spectrum pattern on the short-time spectrum. numpy/scipy only.

How it works
------------
* Everything happens on a mono mix at :data:`WORK_RATE` (16 kHz), so the
  mark lives below 7 kHz, in what MP3, AAC and Opus at low bitrates keep and
  what resampling to 16 kHz mono keeps. The embedder computes the change at
  16 kHz and adds it, resampled back, to every channel at the file's own rate.
* Short-time spectrum: 512-sample Hann frames every 256 samples (32 ms / 16
  ms). A *chip* is :data:`_CHIP_BINS` bins (125 Hz) by :data:`_CHIP_FRAMES`
  frames (48 ms); :data:`_BANDS` chips from 375 Hz to 6.9 kHz make a column,
  :data:`_COLUMNS` columns (1.54 s) one period. A quarter of a period's
  chips are a fixed pseudo-random *sync* pattern; the others carry the 282
  coded bits (each about 4.4 times) with pseudo-random signs and places.
  Periods repeat for the whole programme, so any excerpt holds all bits.
* A chip of sign +-1 multiplies its spectrum by ``1 +- rho``: the change has
  the programme's own spectral shape there (it hides under it) and vanishes
  in silence. ``rho`` is :data:`RHO_MAX` (about 1 dB) where the programme is
  quiet and smaller where it is loud: the change's power per chip is capped
  by one level chosen so the whole change stays :data:`TARGET_SNR_DB` below
  the programme (water-filling: the budget goes where it buys the most
  correlation per unit of power).
* The decoder takes the log band energy per chip, subtracts the mean of the
  eight neighbouring chips (this removes the programme's own spectral and
  temporal envelope and any change of volume, and leaves the +-1 pattern,
  whose neighbours' signs are independent), folds every period of the
  excerpt onto one (adding their evidence), and correlates the fold with
  the sync pattern at every cyclic shift and each of the three frame
  phases of a column. That search is the synchronisation: a clip cut
  anywhere, delayed by a codec or resampled decodes the same.

False positives
---------------
The sync score is the self-normalised correlation
``z = sum(v_i s_i) / sqrt(sum(v_i^2))`` of the folded chip values ``v_i``
with the sync signs ``s_i``. On unmarked audio the values' signs are
independent of the fixed pseudo-random pattern, so Hoeffding's inequality
gives ``P(z >= t) <= exp(-t^2 / 2)`` per alignment; over the
:data:`_CANDIDATES` alignments searched the union bound sets
:data:`THRESHOLD` so that a false sync has probability at most
:data:`SYNC_FALSE_POSITIVE_BOUND`, and the CRC-24 must also match (2^-24),
so a payload is reported for unmarked audio with probability at most
:data:`FALSE_POSITIVE_BOUND`. ``benchmarks/audio.py`` checks it on 1,000
unmarked clips.

Duration
--------
Embedding needs :data:`MIN_SECONDS`; below it ``labelers.sound.apply_audio``
skips the mark and says so. The decoder needs :data:`MIN_DECODE_SECONDS`
and reads at most :data:`MAX_DECODE_SECONDS` (the first ones given).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage, signal

from labelers.watermark.image import (
    _CODED_BITS,
    PAYLOAD_BITS,
    WatermarkResult,
    _bits_int,
    _coded_bits,
    _conv_encode,
    _crc24,
    _viterbi,
)

WORK_RATE = 16000
_NFFT = 512
_HOP = 256
_CHIP_BINS = 4
_CHIP_FRAMES = 3
_FIRST_BIN = 12  # 375 Hz
_BANDS = 52  # up to bin 220: 6.9 kHz
_COLUMNS = 32
_CHIPS = _BANDS * _COLUMNS
_N_SYNC = _CHIPS // 8
_SEED = 0x41554449  # "AUDI": fixes the sync pattern, signs and places

PERIOD_SECONDS = _COLUMNS * _CHIP_FRAMES * _HOP / WORK_RATE
#: shortest programme the embedder marks (below, apply_audio says "skipped")
MIN_SECONDS = 8.0
#: shortest excerpt the decoder tries
MIN_DECODE_SECONDS = 4.0
MAX_DECODE_SECONDS = 60.0

RHO_MAX = 0.2
TARGET_SNR_DB = 31.0
_LOCAL = (7, 5)  # columns x bands over which the decoder estimates the programme's variance
_VAR_FLOOR = 1e-3  # dB^2: digital silence must not divide by zero

_CANDIDATES = _CHIP_FRAMES * _COLUMNS
SYNC_FALSE_POSITIVE_BOUND = 1e-3
THRESHOLD = math.sqrt(2.0 * math.log(_CANDIDATES / SYNC_FALSE_POSITIVE_BOUND))
FALSE_POSITIVE_BOUND = SYNC_FALSE_POSITIVE_BOUND * 2.0**-24

__all__ = [
    "FALSE_POSITIVE_BOUND",
    "MIN_SECONDS",
    "THRESHOLD",
    "WatermarkResult",
    "decode",
    "embed",
]


@dataclass(frozen=True)
class _Layout:
    sync_map: np.ndarray  # (columns, bands): sync signs, 0 on data chips
    data_idx: np.ndarray  # flat chip indices of the data chips
    data_bit: np.ndarray  # coded bit each data chip carries
    data_sign: np.ndarray  # +-1 scrambling per data chip


@lru_cache(maxsize=1)
def _layout() -> _Layout:
    rng = np.random.default_rng(_SEED)
    perm = rng.permutation(_CHIPS)
    sync_idx, data_idx = perm[:_N_SYNC], perm[_N_SYNC:]
    sync_map = np.zeros(_CHIPS)
    sync_map[sync_idx] = rng.choice([-1.0, 1.0], size=_N_SYNC)
    data_bit = rng.permutation(np.arange(data_idx.size) % _CODED_BITS)
    data_sign = rng.choice([-1.0, 1.0], size=data_idx.size)
    return _Layout(sync_map.reshape(_COLUMNS, _BANDS), data_idx, data_bit, data_sign)


def _pattern(payload: int) -> np.ndarray:
    """(columns, bands) of +-1: one period of the mark."""
    lay = _layout()
    chips = lay.sync_map.ravel().copy()
    coded = _coded_bits(payload)
    chips[lay.data_idx] = lay.data_sign * (1.0 - 2.0 * coded[lay.data_bit])
    return chips.reshape(_COLUMNS, _BANDS)


def _to_rate(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``x`` resampled from ``rate`` to ``target`` with :func:`_rate_filter`."""
    if rate == target:
        return x
    g = math.gcd(int(rate), int(target))
    up, down = target // g, rate // g
    return signal.resample_poly(x, up, down, axis=-1, window=_rate_filter(up, down, rate, target))


@lru_cache(maxsize=16)
def _rate_filter(up: int, down: int, rate: int, target: int) -> np.ndarray:
    """A shorter polyphase low-pass than scipy's default (5 instead of 10 zero crossings a
    side: half the cost, which is most of the embedding time) with its -6 dB point at
    0.475 of the lower rate, above the mark's top chip (6.9 kHz of 16 kHz): the droop
    there (~3 dB) only weakens the top chips; what folds back from above 8 kHz, at
    least 20 dB down, is programme the decoder's whitening takes as noise."""
    m = max(up, down)
    cutoff = 0.475 * min(rate, target) / (min(rate, target) / 2) / m
    return signal.firwin(2 * 5 * m + 1, cutoff, window=("kaiser", 5.0))


def _stft(x: np.ndarray) -> np.ndarray:
    """(frames, NFFT/2+1) spectrum of Hann frames every _HOP samples from sample 0."""
    n = 1 + max(0, x.size - _NFFT) // _HOP
    frames = np.lib.stride_tricks.as_strided(
        x, shape=(n, _NFFT), strides=(x.strides[0] * _HOP, x.strides[0]), writeable=False
    )
    return np.fft.rfft(frames * _window(), axis=1)


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    return np.hanning(_NFFT + 1)[:-1]  # periodic Hann: frames every NFFT/2 sum to one


def _band_power(spec: np.ndarray) -> np.ndarray:
    """(frames, bands) power of each chip's bins."""
    p = spec.real**2 + spec.imag**2
    lo = _FIRST_BIN
    hi = lo + _BANDS * _CHIP_BINS
    return p[:, lo:hi].reshape(p.shape[0], _BANDS, _CHIP_BINS).sum(axis=2)


def embed(samples: np.ndarray, rate: int, payload: int) -> np.ndarray:
    """``samples`` (channels, n) float32 with the mark carrying ``payload`` added.

    Works through the programme in blocks of :data:`_BLOCK_FRAMES` frames (about a
    minute), twice: once to measure every chip's energy (the water level is global),
    once to write the change; so the extra memory is the 16 kHz mix and its change
    (a tenth of a 48 kHz stereo programme) whatever the length.
    """
    if not 0 <= payload < 1 << PAYLOAD_BITS:
        raise ValueError("the audio watermark carries a 64-bit unsigned payload")
    host = np.asarray(samples, dtype=np.float32)
    channels, m = host.shape
    x = _resampled(lambda a, b: host[:, a:b].mean(axis=0, dtype=np.float64), m, rate, WORK_RATE)
    n = x.size
    frames = 1 + n // _HOP  # frames every _HOP samples over the mix and NFFT zeros after it
    cols = -(-frames // _CHIP_FRAMES)
    # pass 1: each chip's power (mean over its frames) and the spectrum's units
    chip_sum = np.zeros((cols, _BANDS))
    spec_energy = 0.0
    for f0, spec in _blocks(x, frames):
        bp = _band_power(spec)
        c0 = f0 // _CHIP_FRAMES
        whole = bp.shape[0] // _CHIP_FRAMES * _CHIP_FRAMES
        chip_sum[c0 : c0 + whole // _CHIP_FRAMES] += (
            bp[:whole].reshape(-1, _CHIP_FRAMES, _BANDS).sum(1)
        )
        if whole < bp.shape[0]:
            chip_sum[c0 + whole // _CHIP_FRAMES] += bp[whole:].sum(axis=0)
        spec_energy += float(np.sum(spec.real**2 + spec.imag**2))
    chip_energy = chip_sum.ravel()  # = mean power over the column's frames x _CHIP_FRAMES
    # water-filling: the change's energy per chip is min(RHO_MAX^2 * E, lam), lam set so the
    # whole change stays TARGET_SNR_DB under the programme. The programme's energy per
    # channel at its own rate, in the units of this spectrum: a band-limited change
    # keeps its energy per second across rates, hence WORK_RATE / rate
    energy = sum(
        float(np.einsum("ij,ij->", host[:, a : a + _SUM_BLOCK], host[:, a : a + _SUM_BLOCK],
                        dtype=np.float64))
        for a in range(0, m, _SUM_BLOCK)
    ) / channels  # fmt: skip
    units = spec_energy / max(float(np.dot(x, x)), 1e-30)
    budget = energy * WORK_RATE / rate * units * 10 ** (-TARGET_SNR_DB / 10)
    lam = _water_level(chip_energy * RHO_MAX**2, budget)
    rho = np.minimum(RHO_MAX, np.sqrt(lam / np.maximum(chip_energy, 1e-30)))
    gain_cols = rho.reshape(cols, _BANDS) * _pattern(payload)[np.arange(cols) % _COLUMNS]
    # pass 2: the change, frame by frame, overlap-added at 16 kHz
    delta = np.zeros(frames * _HOP + _NFFT, dtype=np.float32)
    lo, hi = _FIRST_BIN, _FIRST_BIN + _BANDS * _CHIP_BINS
    for f0, spec in _blocks(x, frames):
        gain = np.repeat(gain_cols, _CHIP_FRAMES, axis=0)[f0 : f0 + spec.shape[0]]
        change = np.zeros_like(spec)
        change[:, lo:hi] = spec[:, lo:hi] * np.repeat(gain, _CHIP_BINS, axis=1)
        _overlap_add(delta, np.fft.irfft(change, n=_NFFT, axis=1), f0 * _HOP)
    delta = delta[:n]
    # the budget above is spectral; the promise is on the samples. The change's energy at
    # the file's rate is at most its 16 kHz energy x rate / 16 kHz (the resampler only
    # attenuates), so scaling on that bound keeps the SNR at least TARGET_SNR_DB
    bound = float(np.dot(delta, delta)) * rate / WORK_RATE
    limit = energy * 10 ** (-TARGET_SNR_DB / 10)
    scale = math.sqrt(limit / bound) if bound > limit > 0 else 1.0
    out = host.copy()

    def add(o0: int, o1: int, y: np.ndarray) -> None:
        o1 = min(o1, m)
        if o1 > o0:
            out[:, o0:o1] += (scale * y[: o1 - o0]).astype(np.float32)[None, :]

    _resampled(lambda a, b: delta[a:b].astype(np.float64), n, WORK_RATE, rate, sink=add)
    return out


_BLOCK_FRAMES = _CHIP_FRAMES * _COLUMNS * 39  # 3744 frames: ~60 s, whole periods
_SUM_BLOCK = 1 << 20


def _blocks(x: np.ndarray, frames: int):
    """(first frame, spectrum) of each block of frames over ``x`` (zeros after its end)."""
    for f0 in range(0, frames, _BLOCK_FRAMES):
        f1 = min(frames, f0 + _BLOCK_FRAMES)
        a, b = f0 * _HOP, (f1 - 1) * _HOP + _NFFT
        seg = x[a:b].astype(np.float64)
        if seg.size < b - a:
            seg = np.concatenate([seg, np.zeros(b - a - seg.size)])
        yield f0, _stft(seg)


def _resampled(get, n: int, rate: int, target: int, sink=None) -> np.ndarray | None:
    """``get(a, b)`` (the input's samples a..b, 1-D) resampled from ``rate`` to ``target``.

    In blocks of about :data:`_RESAMPLE_SECONDS` with margins wider than the filter,
    so a long programme never exists at once in float64; each block's output goes to
    ``sink(first, end, samples)``, or into the returned float32 array.
    """
    if rate == target:
        y = np.asarray(get(0, n), dtype=np.float64)
        if sink is None:
            return y.astype(np.float32)
        sink(0, n, y)
        return None
    g = math.gcd(int(rate), int(target))
    up, down = target // g, rate // g
    total = -(-n * up // down)
    out = np.empty(total, dtype=np.float32) if sink is None else None
    step = down * max(1, round(_RESAMPLE_SECONDS * rate / down))
    filt = _rate_filter(up, down, rate, target)
    margin = down * (-(-filt.size // (up * down)) + 1)  # input samples, a multiple of down
    for a in range(0, n, step):
        b = min(n, a + step)
        lo, hi = max(0, a - margin), min(n, b + margin)
        y = signal.resample_poly(np.asarray(get(lo, hi), dtype=np.float64), up, down, window=filt)
        o0, o1 = a * up // down, (total if b == n else b * up // down)
        off = (a - lo) * up // down
        part = y[off : off + (o1 - o0)]
        if sink is None:
            out[o0 : o0 + part.size] = part
        else:
            sink(o0, o0 + part.size, part)
    return out


_RESAMPLE_SECONDS = 60.0


def _water_level(cap_power: np.ndarray, budget: float) -> float:
    """lam with sum(min(cap_power, lam)) == budget (or the largest cap if it all fits)."""
    c = np.sort(cap_power)
    if c.size == 0 or float(c.sum()) <= budget:
        return float(c[-1]) if c.size else 0.0
    below = np.concatenate([[0.0], np.cumsum(c)])
    # with lam between c[k-1] and c[k]: sum = below[k] + (size - k) * lam
    k = np.arange(c.size + 1)
    lam = (budget - below[:-1]) / (c.size - k[:-1])
    ok = (lam >= np.concatenate([[0.0], c[:-1]])) & (lam <= c)
    return float(lam[np.argmax(ok)]) if ok.any() else float(budget / c.size)


def _overlap_add(out: np.ndarray, frames: np.ndarray, start: int) -> None:
    """Add time frames (every _HOP samples from ``start``) into ``out``: the inverse of
    :func:`_stft` for a change of its spectrum (periodic Hann frames at half overlap sum
    to one, so no synthesis window: the change is added as computed)."""
    for k in range(2):  # frames of one parity do not overlap: add them as one block
        block = frames[k::2].reshape(-1)
        a = start + k * _HOP
        out[a : a + block.size] += block


# ---------------------------------------------------------------------- decoding


def _chip_values(x: np.ndarray) -> list[np.ndarray]:
    """Per column phase: (columns, bands) whitened log chip energies.

    Two residuals, each blind to one kind of programme structure: the chip
    minus the mean of its two neighbours in time (steady tones, held notes)
    and minus its two neighbours in frequency (speech, whose spectrum moves
    fast but is smooth across 125 Hz). Each is divided by its local variance
    (a chip where the programme itself varies a lot says little) and the two
    are added: the better one for the programme dominates, chip by chip.
    """
    spec = _stft(x)
    bp = _band_power(spec)
    floor = 1e-7 * float(np.mean(bp)) + 1e-20
    logp = 10.0 * np.log10(bp + floor)
    out = []
    for phase in range(_CHIP_FRAMES):
        f = logp[phase:]
        cols = f.shape[0] // _CHIP_FRAMES
        if cols < 3:
            continue
        v = f[: cols * _CHIP_FRAMES].reshape(cols, _CHIP_FRAMES, _BANDS).mean(axis=1)
        pt = np.pad(v, ((1, 1), (0, 0)), mode="reflect")
        pf = np.pad(v, ((0, 0), (1, 1)), mode="reflect")
        rt = v - (pt[:-2] + pt[2:]) / 2
        rf = v - (pf[:, :-2] + pf[:, 2:]) / 2
        vt = ndimage.uniform_filter(rt * rt, _LOCAL, mode="reflect") + _VAR_FLOOR
        vf = ndimage.uniform_filter(rf * rf, _LOCAL, mode="reflect") + _VAR_FLOOR
        r = rt / vt + rf / vf
        scale = 1.4826 * float(np.median(np.abs(r))) + 1e-12
        np.clip(r, -4 * scale, 4 * scale, out=r)
        out.append(r)
    return out


def _fold(r: np.ndarray) -> np.ndarray:
    cols = r.shape[0]
    folded = np.zeros((_COLUMNS, _BANDS))
    full = cols // _COLUMNS * _COLUMNS
    folded += r[:full].reshape(-1, _COLUMNS, _BANDS).sum(axis=0)
    folded[: cols - full] += r[full:]
    return folded


def _align(folded: np.ndarray) -> tuple[float, np.ndarray]:
    """Best sync z over the cyclic shifts, and the period's chips at that shift."""
    lay = _layout()
    sync = lay.sync_map
    fs = np.fft.rfft(folded, axis=0)
    num = np.fft.irfft(fs * np.conj(np.fft.rfft(sync, axis=0)), n=_COLUMNS, axis=0).sum(axis=1)
    fs2 = np.fft.rfft(folded**2, axis=0)
    den = np.fft.irfft(fs2 * np.conj(np.fft.rfft(np.abs(sync), axis=0)), n=_COLUMNS, axis=0)
    z = num / np.sqrt(np.maximum(den.sum(axis=1), 1e-12))
    s = int(np.argmax(z))
    return float(z[s]), np.roll(folded, -s, axis=0)


def _detect(samples: np.ndarray, rate: int) -> tuple[float, WatermarkResult | None]:
    mono = np.asarray(samples, dtype=np.float64)
    if mono.ndim == 2:
        mono = mono.mean(axis=0)
    mono = mono[: int(MAX_DECODE_SECONDS * rate)]
    x = np.ascontiguousarray(_to_rate(mono, rate, WORK_RATE))
    if x.size < MIN_DECODE_SECONDS * WORK_RATE:
        return -math.inf, None
    hyps = sorted((_align(_fold(r)) for r in _chip_values(x)), key=lambda h: -h[0])
    lay = _layout()
    for score, chips in hyps:
        if score < THRESHOLD:
            break
        soft = np.zeros(_CODED_BITS)
        np.add.at(soft, lay.data_bit, chips.ravel()[lay.data_idx] * lay.data_sign)
        info = _viterbi(soft)
        bits = info[:PAYLOAD_BITS]
        if _crc24(bits) != _bits_int(info[PAYLOAD_BITS:]):
            continue
        errors = int(np.sum((soft < 0) != (_conv_encode(info) == 1)))
        return score, WatermarkResult(_bits_int(bits), score, THRESHOLD, errors, _CODED_BITS)
    return (hyps[0][0] if hyps else -math.inf), None


def decode(samples: np.ndarray, rate: int) -> WatermarkResult | None:
    """The mark in ``samples`` ((channels, n) or (n,) at ``rate``), or None.

    Reads at most the first :data:`MAX_DECODE_SECONDS`.
    """
    return _detect(samples, rate)[1]


def score(samples: np.ndarray, rate: int) -> float:
    """The best sync z-score (for benchmarks: how far from the threshold a clip is)."""
    return _detect(samples, rate)[0]
