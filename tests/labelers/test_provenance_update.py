"""C2PA re-signing after a platform rewrite: the producer's manifest survives as the parent.

The platform's rewrite is simulated the way it happens in service: the
propagation fields are written into the signed file's record with the format
handler, which breaks the producer's hard binding. Results are checked with
read_manifest, with c2pa's own Reader (the manifest store as JSON) and, for
the carriers, independently with exiftool.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import threading

import c2pa
import numpy as np
import pytest
from PIL import Image, ImageDraw

from app.dev_credentials import ensure_dev_credentials
from labelers.errors import (
    CorruptInput,
    InvalidOption,
    InvalidRecord,
    LimitExceeded,
    UnsupportedMedia,
)
from labelers.formats import get_handler
from labelers.limits import Limits
from labelers.provenance import (
    GB_ASSERTION_LABEL,
    TRAINED_ALGORITHMIC_MEDIA,
    C2paSigner,
    read_manifest,
)
from labelers.record import Record

MODEL = "example-diffusion 3.1"
PLATFORM = "example-video-platform 2.0"
PRODUCER = "00ABCDEFGHIJKLMNOPQRST1ABCD"
PLATFORM_CODE = "00PLATFORMQRSTUVWXYZ0122DCB"
MEDIA = {"JPEG": "image/jpeg", "PNG": "image/png"}


# ----------------------------------------------------------------- fixtures
def photo(width: int = 320, height: int = 240, seed: int = 3) -> np.ndarray:
    """Photographic-like RGB: smooth gradients, a soft blob and fine texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 30 + 190 * x / width
    g = 50 + 160 * y / height
    b = 110 + 100 * np.exp(-(((x - width * 0.4) ** 2 + (y - height * 0.6) ** 2) / (width * 10)))
    img = np.stack([r, g, b], axis=-1) + rng.normal(0, 5, (height, width, 3))
    return img.clip(0, 255).astype(np.uint8)


def encode(fmt: str, image: Image.Image | None = None) -> bytes:
    buf = io.BytesIO()
    image = image or Image.fromarray(photo())
    image.save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.fixture(scope="module")
def creds(tmp_path_factory):
    return ensure_dev_credentials(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def anchors(creds) -> str:
    return creds.ca_pem.read_text()


@pytest.fixture(scope="module")
def signer(creds) -> C2paSigner:
    return C2paSigner.from_files(creds.chain_pem, creds.key_pem)


@pytest.fixture(scope="module")
def produced() -> Record:
    return Record.first_write(PRODUCER, "01JUPDATEPR0DUCER000000001")


@pytest.fixture(scope="module")
def propagated(produced) -> Record:
    return produced.with_fields(content_propagator=PLATFORM_CODE, propagate_id="PLAT-0001")


@pytest.fixture(scope="module", params=list(MEDIA))
def chain(request, signer, produced, propagated):
    """(fmt, source, producer-signed, platform-rewritten) for JPEG and PNG."""
    fmt = request.param
    source = encode(fmt)
    signed = signer.sign(source, MEDIA[fmt], produced, MODEL, title=f"made.{fmt.lower()}")
    rewritten = get_handler(MEDIA[fmt]).write_record(signed, propagated)
    return fmt, source, signed, rewritten


def store_of(data: bytes, media_type: str, anchors: str) -> dict:
    """The whole manifest store, straight from c2pa's Reader."""
    settings = {
        "trust": {"user_anchors": anchors},
        "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
    }
    context = c2pa.Context(c2pa.Settings.from_dict(settings))
    with c2pa.Reader(media_type, io.BytesIO(data), None, context) as reader:
        return json.loads(reader.json())


# ================================================================ the update
def test_rewriting_a_signed_file_breaks_the_producers_binding(chain, anchors):
    # why sign_update exists: the platform's record write changes covered bytes
    fmt, _, signed, rewritten = chain
    assert rewritten != signed
    report = read_manifest(rewritten, MEDIA[fmt], anchors)
    assert report.content_altered
    assert report.state == "Invalid"
    assert report.signer_trusted  # the producer's signature itself is fine


def test_update_keeps_the_producers_manifest_as_parent(chain, signer, propagated, anchors):
    fmt, source, signed, rewritten = chain
    media_type = MEDIA[fmt]
    updated = signer.sign_update(rewritten, media_type, propagated, PLATFORM, parent=signed)

    report = read_manifest(updated, media_type, anchors)
    assert report.state == "Trusted"
    assert not report.content_altered
    assert report.signer_trusted and report.manifest_intact
    assert report.actions == ["c2pa.opened", "c2pa.published"]
    assert report.software_agents == [PLATFORM]
    assert report.digital_source_types == []  # the platform created nothing
    assert report.gb_record == propagated.as_dict()
    assert report.validation_errors == []
    json.dumps(report.to_dict())

    [parent] = report.ingredients
    assert parent["relationship"] == "parentOf"
    assert parent["claim_generator"].startswith("aigc-label ")
    assert parent["actions"] == ["c2pa.created"]
    assert parent["gb_record"]["ContentPropagator"] == PRODUCER  # the producer's own record
    assert parent["title"] == f"made.{fmt.lower()}"
    assert parent["validation_state"] == "Trusted"
    assert not parent["content_altered"]
    assert parent["validation_errors"] == []
    assert parent["format"] == media_type

    # c2pa's own view: two manifests, the active one names the producer's as its parent
    store = store_of(updated, media_type, anchors)
    assert store["validation_state"] == "Trusted"
    assert len(store["manifests"]) == 2
    producer_label = store["manifests"][store["active_manifest"]]["ingredients"][0][
        "active_manifest"
    ]
    assert producer_label == parent["active_manifest"]
    producer = store["manifests"][producer_label]
    assert producer["title"] == f"made.{fmt.lower()}"
    assert producer["assertions"][0]["data"]["actions"][0]["softwareAgent"]["name"] == MODEL
    assert parent["signer"] == read_manifest(signed, media_type).signer

    # re-signing embeds metadata only: the pixels are the producer's
    assert np.array_equal(pixels(updated), pixels(source))


def test_updated_file_keeps_the_rewritten_record_in_its_carrier(chain, signer, propagated):
    fmt, _, signed, rewritten = chain
    updated = signer.sign_update(rewritten, MEDIA[fmt], propagated, PLATFORM, parent=signed)
    found = get_handler(MEDIA[fmt]).read(updated)
    assert found.records
    assert all(r.record == propagated for r in found.records)


def exiftool_values(data: bytes, *tags: str) -> dict[str, list[str]]:
    """Every value of each tag, duplicates kept (JSON output would merge them)."""
    out = subprocess.run(
        ["exiftool", "-a", "-s", "-s", *[f"-{t}" for t in tags], "-"],
        input=data,
        capture_output=True,
        check=True,
    ).stdout.decode()
    values: dict[str, list[str]] = {}
    for line in out.splitlines():
        name, _, value = line.partition(": ")
        values.setdefault(name.strip(), []).append(value)
    return values


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")
def test_exiftool_sees_both_manifests_and_the_new_record(chain, signer, propagated):
    fmt, _, signed, rewritten = chain
    updated = signer.sign_update(rewritten, MEDIA[fmt], propagated, PLATFORM, parent=signed)
    tags = exiftool_values(
        updated, "JUMBF:JUMDLabel", "CBOR:Relationship", "CBOR:PropagateID", "XMP-TC260:Aigc"
    )
    labels = tags["JUMDLabel"]
    assert sum(label.startswith("urn:c2pa:") for label in labels) == 2
    assert labels.count(GB_ASSERTION_LABEL) == 2  # the producer's and the platform's
    assert labels.count("c2pa.ingredient.v3") == 1
    assert tags["Relationship"] == ["parentOf"]
    # the producer's record (PropagateID = its ProduceID) and the platform's
    assert sorted(tags["PropagateID"]) == sorted([propagated.produce_id, "PLAT-0001"])
    assert [json.loads(v) for v in tags["Aigc"]] == [propagated.as_dict()]


def test_reader_without_anchors_sees_untrusted_but_unaltered_links(chain, signer, propagated):
    fmt, _, signed, rewritten = chain
    updated = signer.sign_update(rewritten, MEDIA[fmt], propagated, PLATFORM, parent=signed)
    report = read_manifest(updated, MEDIA[fmt])
    assert report.state == "Valid"
    assert not report.content_altered
    [parent] = report.ingredients
    assert parent["validation_state"] == "Valid"
    assert parent["validation_errors"] == ["signingCredential.untrusted"]
    assert not parent["content_altered"]


def test_another_ca_trusts_neither_manifest(chain, signer, propagated, tmp_path):
    fmt, _, signed, rewritten = chain
    updated = signer.sign_update(rewritten, MEDIA[fmt], propagated, PLATFORM, parent=signed)
    other = ensure_dev_credentials(tmp_path).ca_pem.read_text()
    report = read_manifest(updated, MEDIA[fmt], other)
    assert not report.signer_trusted
    assert report.ingredients[0]["validation_state"] == "Valid"


def test_an_already_altered_parent_is_kept_with_that_finding(chain, signer, propagated, anchors):
    # passing the rewritten bytes as parent (a caller mistake, or a file that
    # arrived altered) must not launder it: the ingredient says so
    fmt, _, _, rewritten = chain
    updated = signer.sign_update(rewritten, MEDIA[fmt], propagated, PLATFORM, parent=rewritten)
    report = read_manifest(updated, MEDIA[fmt], anchors)
    assert report.state == "Trusted" and not report.content_altered  # the new claim holds
    [parent] = report.ingredients
    assert parent["content_altered"]
    assert parent["validation_state"] == "Invalid"
    assert "assertion.dataHash.mismatch" in parent["validation_errors"]
    assert parent["actions"] == ["c2pa.created"]


def test_visible_change_is_recorded_as_edited(signer, produced, propagated, anchors):
    source = encode("JPEG")
    signed = signer.sign(source, "image/jpeg", produced, MODEL)
    labelled = Image.open(io.BytesIO(signed)).convert("RGB")
    ImageDraw.Draw(labelled).rectangle((8, 8, 120, 32), fill=(255, 255, 255))
    rewritten = get_handler("image/jpeg").write_record(encode("JPEG", labelled), propagated)
    updated = signer.sign_update(
        rewritten, "image/jpeg", propagated, PLATFORM, parent=signed, action="c2pa.edited"
    )
    report = read_manifest(updated, "image/jpeg", anchors)
    assert report.state == "Trusted" and not report.content_altered
    assert report.actions == ["c2pa.opened", "c2pa.edited"]
    assert report.ingredients[0]["validation_state"] == "Trusted"
    assert not np.array_equal(pixels(updated), pixels(source))


def test_two_platforms_in_a_row_keep_the_whole_chain(signer, produced, propagated, anchors):
    signed = signer.sign(encode("PNG"), "image/png", produced, MODEL)
    handler = get_handler("image/png")
    first = signer.sign_update(
        handler.write_record(signed, propagated), "image/png", propagated, PLATFORM, parent=signed
    )
    second_record = propagated.with_fields(propagate_id="PLAT-0002")
    second = signer.sign_update(
        handler.write_record(first, second_record),
        "image/png",
        second_record,
        "another-platform 1.0",
        parent=first,
    )
    report = read_manifest(second, "image/png", anchors)
    assert report.state == "Trusted" and not report.content_altered
    assert report.gb_record["PropagateID"] == "PLAT-0002"
    [parent] = report.ingredients  # direct ingredients only
    assert parent["actions"] == ["c2pa.opened", "c2pa.published"]
    assert parent["gb_record"]["PropagateID"] == "PLAT-0001"
    assert parent["validation_state"] == "Trusted"
    assert len(store_of(second, "image/png", anchors)["manifests"]) == 3


# ============================================================ no parent manifest
@pytest.mark.parametrize("parent", ["none", "unsigned"])
def test_without_a_parent_manifest_it_signs_afresh_with_the_action(
    parent, signer, propagated, anchors
):
    source = encode("PNG")
    rewritten = get_handler("image/png").write_record(source, propagated)
    updated = signer.sign_update(
        rewritten,
        "image/png",
        propagated,
        PLATFORM,
        parent=None if parent == "none" else source,
    )
    report = read_manifest(updated, "image/png", anchors)
    assert report.state == "Trusted" and not report.content_altered
    assert report.actions == ["c2pa.created", "c2pa.published"]
    assert report.digital_source_types == [TRAINED_ALGORITHMIC_MEDIA]
    assert report.software_agents == [PLATFORM]  # on the platform's action only
    assert report.gb_record == propagated.as_dict()
    assert report.ingredients == []
    assert len(store_of(updated, "image/png", anchors)["manifests"]) == 1


def test_a_reverse_domain_action_is_accepted(signer, propagated, anchors):
    updated = signer.sign_update(
        encode("PNG"), "image/png", propagated, PLATFORM, action="com.example.reviewed"
    )
    assert read_manifest(updated, "image/png", anchors).actions[-1] == "com.example.reviewed"


def test_files_signed_by_sign_report_no_ingredients(signer, produced, anchors):
    signed = signer.sign(encode("JPEG"), "image/jpeg", produced, MODEL)
    assert read_manifest(signed, "image/jpeg", anchors).ingredients == []


# ===================================================================== threads
def test_concurrent_updates_from_many_threads(signer, produced, anchors):
    signed = signer.sign(encode("JPEG"), "image/jpeg", produced, MODEL)
    handler = get_handler("image/jpeg")
    results: dict[str, bytes] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def work(thread: int) -> None:
        try:
            barrier.wait()
            for i in range(5):
                rec = produced.with_fields(
                    content_propagator=PLATFORM_CODE, propagate_id=f"T{thread}N{i}"
                )
                rewritten = handler.write_record(signed, rec)
                results[rec.propagate_id] = signer.sign_update(
                    rewritten, "image/jpeg", rec, PLATFORM, parent=signed
                )
        except BaseException as exc:  # surfaced below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 20
    for propagate_id, updated in results.items():
        report = read_manifest(updated, "image/jpeg", anchors)
        assert report.state == "Trusted" and not report.content_altered
        assert report.gb_record["PropagateID"] == propagate_id
        assert report.ingredients[0]["validation_state"] == "Trusted"


# ====================================================================== errors
@pytest.mark.parametrize(
    "action", ["", "published", "c2pa published", "c2pa.created", "c2pa.opened", None]
)
def test_unusable_actions_are_invalid_options(action, signer, propagated):
    with pytest.raises(InvalidOption, match="action"):
        signer.sign_update(encode("PNG"), "image/png", propagated, PLATFORM, action=action)


def test_bad_agent_record_media_or_size_are_refused(signer, propagated):
    png = encode("PNG")
    with pytest.raises(InvalidOption, match="software_agent"):
        signer.sign_update(png, "image/png", propagated, " ")
    bad = Record(label="9", content_producer="P 1", produce_id="")
    with pytest.raises(InvalidRecord):
        signer.sign_update(png, "image/png", bad, PLATFORM)
    with pytest.raises(UnsupportedMedia, match="text/plain"):
        signer.sign_update(b"hello", "text/plain", propagated, PLATFORM)
    with pytest.raises(CorruptInput, match="empty"):
        signer.sign_update(b"", "image/png", propagated, PLATFORM)
    small = Limits(max_bytes=len(png) + 10)
    with pytest.raises(LimitExceeded, match="parent file"):
        signer.sign_update(png, "image/png", propagated, PLATFORM, parent=png * 2, limits=small)


def test_a_parent_with_a_damaged_manifest_is_corrupt_input(signer, produced, propagated):
    signed = bytearray(signer.sign(encode("JPEG"), "image/jpeg", produced, MODEL))
    at = signed.index(GB_ASSERTION_LABEL.encode())
    signed[at + 40 : at + 48] = b"\xff" * 8  # garble the producer's assertion box
    rewritten = get_handler("image/jpeg").write_record(encode("JPEG"), propagated)
    with pytest.raises(CorruptInput, match="parent"):
        signer.sign_update(rewritten, "image/jpeg", propagated, PLATFORM, parent=bytes(signed))
