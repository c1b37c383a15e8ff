"""Audio through the HTTP API and the CLI: WAV, MP3, FLAC, Ogg Vorbis and Opus labelled
and verified, C2PA signed where c2pa writes the format, bad input answered 4xx.

Inputs are made by ffmpeg in the test; outputs are checked with ffprobe /
exiftool (the record), ffmpeg (the decoded samples, the duration) and the
c2pa library's own Reader (the manifest).
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import c2pa
import pytest

from labelers.formats import get_handler, sniff
from labelers.record import Record
from labelers.visible import audio as label
from tests import sounds
from tests.audio_samples import (
    FORMATS,
    MEDIA_TYPES,
    decoded,
    exiftool_riff_record,
    ffmpeg_file,
    ffprobe,
)
from tests.support import KEYS, auth

C2PA_FORMATS = ("wav", "mp3", "flac", "m4a")  # what c2pa-python 0.38 writes; not Ogg
TAGS = {"title": "Kept Title", "artist": "Kept Artist"}


def _label(client, data: bytes, key: str = "gen-key", **form: str):
    return client.post("/v1/label", headers=auth(key), files={"file": ("clip", data)}, data=form)


def _verify(client, data: bytes) -> dict:
    response = client.post("/v1/verify", headers=auth(), files={"file": ("clip", data)})
    assert response.status_code == 200, response.text
    return response.json()


def _record_seen_by_independent_reader(fmt: str, data: bytes) -> Record:
    if fmt == "wav":
        return Record.parse(exiftool_riff_record(data))
    return Record.parse(ffprobe(data)["tags"]["aigc"])


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_metadata_only_label_keeps_the_audio_bit_exact_signs_c2pa_and_verifies(client, fmt):
    original = ffmpeg_file(fmt, seconds=1.0, tags=TAGS)
    response = _label(client, original, "omit-key", explicit="none", watermark="false")
    assert response.status_code == 200, response.text
    out = response.content
    assert response.headers["content-type"] == MEDIA_TYPES[fmt]
    assert response.headers["AIGC-Explicit"] == "none"
    assert response.headers["AIGC-Watermark"] == "off"
    record = Record.parse(response.headers["AIGC-Record"])
    assert _record_seen_by_independent_reader(fmt, out) == record
    assert decoded(out) == decoded(original)  # not one sample changed
    assert ffprobe(out)["tags"]["title"] == "Kept Title"

    if fmt in C2PA_FORMATS:
        assert response.headers["AIGC-C2PA"] == "signed"
        reader = c2pa.Reader(MEDIA_TYPES[fmt], io.BytesIO(out))
        assert reader.get_validation_state() in ("Valid", "Trusted"), reader.json()
        store = json.loads(reader.json())
        active = store["manifests"][store["active_manifest"]]
        tc260 = next(a for a in active["assertions"] if a["label"] == "cn.tc260.aigc")
        assert Record.from_mapping(tc260["data"]) == record
    else:
        assert response.headers["AIGC-C2PA"] == "not available for audio/ogg"

    report = _verify(client, out)
    assert report["classification"] == "confirmed"
    assert report["record"]["ProduceID"] == record.produce_id
    assert report["integrity"]["producer"]["status"] == "valid"  # content digest matches
    if fmt in C2PA_FORMATS:
        assert report["integrity"]["c2pa"]["validation"] == "trusted"
    # a record but no audible label: a finding for the moderator
    assert "explicit-label-missing" in {f["code"] for f in report["findings"]}


@pytest.mark.parametrize("fmt", ["mp3", "flac", "m4a"])
def test_default_label_adds_the_rhythm_and_the_watermark_and_keeps_tags_and_duration(client, fmt):
    original = ffmpeg_file(fmt, seconds=12.0, tags=TAGS)
    response = _label(client, original)
    assert response.status_code == 200, response.text
    out = response.content
    assert response.headers["AIGC-Explicit"] == "rhythm (start)"
    assert response.headers["AIGC-Watermark"] == "embedded"
    before, after = ffprobe(original), ffprobe(out)
    for key in ("codec", "sample_rate", "channels", "duration"):
        assert after[key] == pytest.approx(before[key], abs=0.05), key
    assert after["tags"]["title"] == "Kept Title" and after["tags"]["artist"] == "Kept Artist"
    record = Record.parse(response.headers["AIGC-Record"])
    assert _record_seen_by_independent_reader(fmt, out) == record

    report = _verify(client, out)
    kinds = {e["kind"]: e for e in report["evidence"]}
    assert report["classification"] == "confirmed"
    assert kinds["explicit-label"]["carrier"] == "audio:rhythm"
    assert kinds["explicit-label"]["data"]["spans"][0][0] < 1.0  # at the start
    assert "explicit-label-missing" not in {f["code"] for f in report["findings"]}

    # metadata stripped by a re-upload: the watermark still finds the record in the ledger
    stripped = get_handler(MEDIA_TYPES[fmt]).carry_metadata(
        ffmpeg_file(fmt, seconds=0.2, extra=("-map_metadata", "-1")), out
    )
    assert get_handler(MEDIA_TYPES[fmt]).read(stripped).records == []
    report = _verify(client, stripped)
    assert report["classification"] == "confirmed", report
    assert report["record"]["ProduceID"] == record.produce_id


def _espeak_wav(text: str, tmp_path: Path) -> bytes:
    out = tmp_path / "word.wav"  # a file: on a pipe espeak-ng writes placeholder sizes
    subprocess.run(["espeak-ng", "-v", "en", "-w", str(out), text], check=True)
    return out.read_bytes()


@pytest.mark.skipif(not sounds.have_espeak(), reason="needs Debian's espeak-ng")
def test_one_spoken_word_is_labelled_with_a_faster_rhythm_and_verified(client, tmp_path):
    # "OK" from espeak-ng: 0.72 s, shorter than the standard rhythm's 1.31 s
    word = _espeak_wav("OK", tmp_path)
    seconds = ffprobe(word)["duration"]
    assert 0.67 < seconds < 1.31
    response = _label(client, word)
    assert response.status_code == 200, response.text
    unit = label.rhythm_unit(seconds, "start")
    assert response.headers["AIGC-Explicit"] == f"rhythm (start, {unit * 1000:.0f} ms dots)"
    assert response.headers["AIGC-Watermark"].startswith("skipped")
    assert ffprobe(response.content)["duration"] == pytest.approx(seconds, abs=0.01)
    report = _verify(client, response.content)
    assert report["classification"] == "confirmed"
    rhythm = next(e for e in report["evidence"] if e["carrier"] == "audio:rhythm")
    ((start, end),) = rhythm["data"]["spans"]
    assert end - start == pytest.approx(label.RHYTHM_UNITS * unit, abs=0.04)
    assert "explicit-label-missing" not in {f["code"] for f in report["findings"]}


def test_a_clip_below_the_fastest_rhythm_is_refused_with_the_floor(client):
    # a notification-length sound by ffmpeg: 0.3 s, under the 0.67 s floor
    blip = ffmpeg_file("wav", seconds=0.3)
    response = _label(client, blip)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "needs at least 0.67 s even at its fastest" in detail
    assert "position=before or after" in detail


@pytest.mark.parametrize("fmt,place", [("wav", "before"), ("mp3", "after")])
def test_a_notification_sound_gets_the_label_outside_it_on_request(client, fmt, place):
    # 0.3 s by ffmpeg: too short for any rhythm inside it; before/after lengthens the file
    blip = ffmpeg_file(fmt, seconds=0.3, tags=TAGS)
    response = _label(client, blip, position=place)
    assert response.status_code == 200, response.text
    assert response.headers["AIGC-Explicit"] == f"rhythm ({place})"
    out = response.content
    added = label.extension_s("rhythm", 1)
    assert ffprobe(out)["duration"] == pytest.approx(ffprobe(blip)["duration"] + added, abs=0.06)
    assert ffprobe(out)["tags"]["title"] == "Kept Title"
    if fmt == "wav":  # PCM: the programme itself is untouched, sample for sample
        programme = decoded(blip)
        assert decoded(out)[-len(programme) :] == programme
    report = _verify(client, out)
    assert report["classification"] == "confirmed"
    rhythm = next(e for e in report["evidence"] if e["carrier"] == "audio:rhythm")
    ((start, _),) = rhythm["data"]["spans"]
    seconds = ffprobe(out)["duration"]
    at = label.EDGE_S if place == "before" else seconds - label.EDGE_S - label.RHYTHM_S
    assert start == pytest.approx(at, abs=0.06)


def test_audio_options_are_checked(client):
    wav = ffmpeg_file("wav", seconds=0.5)
    bad_place = _label(client, wav, position="bottom-right")
    assert bad_place.status_code == 422
    assert "does not apply to audio" in bad_place.json()["detail"]
    bad_explicit = _label(client, wav, explicit="whistle")
    assert bad_explicit.status_code == 422
    omitted = _label(client, wav, explicit="none")
    assert omitted.status_code == 403  # the key lacks omit_explicit


def _damaged() -> list[tuple[str, bytes]]:
    wav = ffmpeg_file("wav", seconds=0.2)
    mp3 = ffmpeg_file("mp3", tags=TAGS)
    vorbis = ffmpeg_file("vorbis", tags=TAGS)
    flac = ffmpeg_file("flac", tags=TAGS)
    huge = bytearray(wav)
    at = wav.index(b"LIST")
    huge[at + 4 : at + 8] = b"\xff\xff\xff\x7f"  # a chunk claims 2 GB
    crc = bytearray(vorbis)
    crc[-10] ^= 0x01  # the last audio page's body
    id3_lie = bytearray(mp3)
    id3_lie[6:10] = b"\x00\x00\x7f\x7f"
    return [
        ("wav-truncated", wav[:60]),
        ("wav-huge-chunk", bytes(huge)),
        ("mp3-id3-size-lies", bytes(id3_lie)),
        ("ogg-crc-wrong", bytes(crc)),
        ("flac-truncated", flac[:200]),
    ]


@pytest.mark.parametrize("name,data", _damaged(), ids=[n for n, _ in _damaged()])
def test_damaged_audio_gets_a_4xx_problem_naming_it(client, name, data):
    for response in (
        _label(client, data, "omit-key", explicit="none", watermark="false"),
        _label(client, data),
        client.post("/v1/verify", headers=auth(), files={"file": ("clip", data)}),
    ):
        assert 400 <= response.status_code < 500, (response.status_code, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"]


def test_audio_limits_from_settings_refuse_before_decoding(tmp_path):
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    settings = Settings(data_dir=tmp_path / "var", api_keys=json.dumps(KEYS), max_audio_seconds=0.5)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = _label(client, ffmpeg_file("flac", seconds=1.0))
        assert response.status_code == 413
        assert "AIGC_MAX_AUDIO_SECONDS" in response.json()["detail"]


def test_cli_labels_audio_with_the_chosen_audible_label_and_place(tmp_path):
    from tests.app.test_cli import run_here

    env = {"AIGC_DATA_DIR": str(tmp_path / "var")}
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.flac").write_bytes(ffmpeg_file("flac", seconds=3.0, tags=TAGS))
    report = tmp_path / "r.jsonl"
    proc = run_here("label", str(src), "-o", str(tmp_path / "out"), "--explicit", "rhythm",
                    "--position", "end", "--no-watermark", "--report", str(report),
                    env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    line = next(x for x in lines if x.get("path", "").endswith("a.flac"))
    assert line["explicit"] == "rhythm (end)"
    out = (tmp_path / "out" / "a.flac").read_bytes()
    assert sniff(out) == "audio/flac"
    assert len(get_handler("audio/flac").read(out).records) == 1


def test_a_platform_propagates_into_the_one_audio_record(client):
    from tests.support import PLATFORM

    labelled = _label(client, ffmpeg_file("flac", seconds=1.0, tags=TAGS), "omit-key",
                      explicit="none", watermark="false").content  # fmt: skip
    response = client.post(
        "/v1/propagate", headers=auth("platform-key"), files={"file": ("clip", labelled)}
    )
    assert response.status_code == 200, response.text
    assert response.headers["AIGC-Classification"] == "confirmed"
    [found] = get_handler("audio/flac").read(response.content).records
    assert found.record.content_propagator == PLATFORM
    assert Record.parse(ffprobe(response.content)["tags"]["aigc"]) == found.record
    assert decoded(response.content) == decoded(labelled)

    # no record, but the uploader declares AI: the platform creates one with Label "2"
    bare = ffmpeg_file("mp3", seconds=1.0, tags=TAGS)
    response = client.post(
        "/v1/propagate",
        headers=auth("platform-key"),
        files={"file": ("clip", bare)},
        data={"declared_ai": "true"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["AIGC-Record-Created"] == "true"
    assert Record.parse(ffprobe(response.content)["tags"]["aigc"]).label == "2"
