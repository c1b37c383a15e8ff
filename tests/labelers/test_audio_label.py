"""The audible explicit label: the Morse "AI" rhythm where placed, at the documented timing
and level, without clicks; the shipped spoken clips at 120-160 characters a minute.

Timing is measured on the decoded output by an independent envelope reader (a
band-pass around the tone and a threshold), not by the detector under test.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import soundfile
from scipy import signal

from labelers import sound
from labelers.errors import InvalidOption
from labelers.visible import audio as label
from tests import sounds

RATE = 44100


def wav(samples: np.ndarray, rate: int = RATE) -> bytes:
    buf = io.BytesIO()
    soundfile.write(buf, samples.T, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def tone_segments(x: np.ndarray, rate: int, hz: float = label.TONE_HZ) -> list[tuple[float, float]]:
    """(start, end) seconds where a narrow band around ``hz`` is loud (half its peak)."""
    sos = signal.butter(4, [hz - 60, hz + 60], btype="bandpass", fs=rate, output="sos")
    env = np.abs(signal.hilbert(signal.sosfiltfilt(sos, x)))
    env = signal.sosfiltfilt(signal.butter(2, 100, fs=rate, output="sos"), env)
    on = env > 0.5 * env.max()
    edges = np.flatnonzero(np.diff(on.astype(np.int8)))
    if on[0]:
        edges = np.r_[0, edges]
    if on[-1]:
        edges = np.r_[edges, on.size - 1]
    spans = [(a / rate, b / rate) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    return [(a, b) for a, b in spans if b - a > 0.04]  # the programme's own blips are shorter


def expected_tones(start: float) -> list[tuple[float, float]]:
    return [(start + t, start + t + d) for t, d in label.RHYTHM_TONES]


@pytest.mark.parametrize("place", ["start", "end", "both"])
def test_rhythm_is_where_placed_at_the_documented_timing(place):
    programme = sounds.music(1, 6.0, RATE, channels=2) * 0.5
    out = sound.apply_audio(
        wav(programme), "audio/wav", audible="rhythm", place=place, watermark_key=None
    )
    pcm = sound.decode(out.data, "audio/wav")
    found = tone_segments(pcm.samples.mean(axis=0), RATE)
    want = []
    if place in ("start", "both"):
        want += expected_tones(label.EDGE_S)
    if place in ("end", "both"):
        want += expected_tones(6.0 - label.EDGE_S - label.RHYTHM_S)
    assert len(found) == len(want)
    for (a, b), (c, d) in zip(found, want, strict=True):
        # the half-amplitude points of a 10 ms raised-cosine ramp sit 5 ms inside the tone
        assert abs(a - c) < 0.012 and abs(b - d) < 0.012
    assert round(label.RHYTHM_S, 3) == 1.08


def test_rhythm_tones_start_and_stop_without_clicks():
    x = label.rhythm(RATE)
    for start, length in label.RHYTHM_TONES:
        i0, i1 = round(start * RATE), round((start + length) * RATE)
        assert abs(x[i0]) < 1e-3 and abs(x[i1 - 1]) < 1e-3
    # no step anywhere larger than a full-scale 800 Hz sine's own largest sample step
    assert np.max(np.abs(np.diff(x))) <= 2 * math.pi * label.TONE_HZ / RATE * 1.001
    # and nothing of a click's broadband energy: above 3 kHz the rhythm is silent
    f, p = signal.welch(x, RATE, nperseg=4096)
    assert p[f > 3000].sum() < 1e-6 * p.sum()


def test_label_loudness_follows_the_programme():
    for gain in (0.05, 0.4):
        programme = sounds.speech(2, 5.0, RATE) * gain / 0.5
        mixed = label.add_audible(programme, RATE, "rhythm", "start")
        dash_start = label.EDGE_S + label.RHYTHM_TONES[1][0] + 0.02
        i0, i1 = round(dash_start * RATE), round((dash_start + 0.3) * RATE)
        tone_only = mixed[:, i0:i1] - programme[:, i0:i1] * 10 ** (-label.DUCK_DB / 20)
        measured = label.loudness(tone_only, RATE)
        assert measured == pytest.approx(
            label.loudness(programme, RATE) + label.LABEL_OFFSET_LU, abs=1.0
        )


def test_programme_outside_the_label_is_untouched():
    programme = sounds.music(4, 5.0, RATE)
    mixed = label.add_audible(programme, RATE, "rhythm", "start")
    after = round((label.EDGE_S + label.RHYTHM_S + label.DUCK_RAMP_S) * RATE) + 1
    assert np.array_equal(mixed[:, after:], programme[:, after:])


@pytest.mark.parametrize("wording", list(label.VOICE_CLIPS))
def test_spoken_clips_are_read_at_120_to_160_characters_a_minute(wording):
    clip = label.speech(wording, 16000)
    hop = 160
    frames = clip[: clip.size // hop * hop].reshape(-1, hop)
    level = 20 * np.log10(np.sqrt(np.mean(frames**2, axis=1)) + 1e-12)
    voiced = np.flatnonzero(level > level.max() - 40)
    seconds = (voiced[-1] - voiced[0] + 1) * hop / 16000
    assert 120 <= len(wording) / seconds * 60 <= 160


def test_spoken_label_is_mixed_and_unknown_wording_refused():
    programme = sounds.music(5, 6.0, RATE) * 0.3
    mixed = label.add_audible(programme, RATE, "speech", "end", "AI生成")
    clip_s = label.speech("AI生成", RATE).size / RATE
    start = 6.0 - label.EDGE_S - clip_s
    region = slice(round(start * RATE), round((start + clip_s) * RATE))
    change = mixed[:, region] - programme[:, region] * 10 ** (-label.DUCK_DB / 20)
    assert np.sqrt(np.mean(change**2)) > 0.01
    with pytest.raises(InvalidOption, match="no spoken label"):
        label.add_audible(programme, RATE, "speech", "start", "由AI合成的内容")


def test_too_short_for_the_label_is_refused():
    with pytest.raises(InvalidOption, match="too short"):
        label.add_audible(np.zeros((1, RATE), np.float32), RATE, "rhythm", "both")


@pytest.mark.parametrize("seconds", [0.7, 0.9, 1.2])
def test_a_short_clip_gets_the_rhythm_faster_at_scaled_timing(seconds):
    # shorter than the 1.31 s of the standard rhythm: every length scaled by one factor
    programme = sounds.music(3, seconds, RATE, channels=1) * 0.5
    out = sound.apply_audio(wav(programme), "audio/wav", audible="rhythm", place="start")
    unit = label.rhythm_unit(seconds, "start")
    assert label.MIN_DOT_S <= unit < label.DOT_S
    assert out.audible_detail == f"{unit * 1000:.0f} ms dots"
    pcm = sound.decode(out.data, "audio/wav")
    assert pcm.samples.shape[1] == programme.shape[1]  # the clip keeps its length
    found = tone_segments(pcm.samples.mean(axis=0), RATE)
    scale = unit / label.DOT_S
    want = [(label.EDGE_S * scale + t * scale, label.EDGE_S * scale + (t + d) * scale)
            for t, d in label.RHYTHM_TONES]  # fmt: skip
    assert len(found) == 4
    for (a, b), (wa, wb) in zip(found, want, strict=True):
        assert a == pytest.approx(wa, abs=0.015) and b == pytest.approx(wb, abs=0.015)


def test_two_short_rhythms_at_both_ends_stay_apart():
    seconds = 2.0
    programme = sounds.music(4, seconds, RATE, channels=1) * 0.5
    mixed = label.add_audible(programme, RATE, "rhythm", "both")
    unit = label.rhythm_unit(seconds, "both")
    found = tone_segments(mixed.mean(axis=0), RATE)
    assert len(found) == 8
    assert found[4][0] - found[3][1] >= label.SEPARATION_UNITS * unit - 0.01


def test_below_the_fastest_rhythm_the_refusal_names_the_floor():
    floor = label.rhythm_need("start", label.MIN_DOT_S)
    assert floor == pytest.approx(0.67, abs=0.005)
    label.add_audible(
        np.zeros((1, round((floor + 0.01) * RATE)), np.float32), RATE, "rhythm", "start"
    )
    with pytest.raises(InvalidOption, match=f"at least {floor:.2f} s even at its fastest"):
        label.add_audible(np.zeros((1, round(0.6 * RATE)), np.float32), RATE, "rhythm", "start")


def test_k_weighted_loudness_of_a_reference_tone():
    # BS.1770: a 0 dBFS 1 kHz sine on one channel reads -3.01 LUFS
    t = np.arange(5 * 48000) / 48000
    x = np.sin(2 * np.pi * 1000 * t)[None, :]
    assert label.loudness(x, 48000) == pytest.approx(-3.01, abs=0.05)
