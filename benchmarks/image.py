"""Image labelling and verification cost, as ratios of a bare Pillow decode + encode.

For each generated photo-like image (1 MP and 12 MP, JPEG q90 and PNG) the
same run times, round by round:

- baseline: Pillow opens the file, decodes it and encodes it again in its own
  format (JPEG ``quality="keep"``: same tables and subsampling; PNG zlib level 6);
- metadata only: ``label_file`` with the explicit label, watermark and C2PA
  off and no record signer (the record spliced into the container);
- full: visible label + watermark + signed record (ReservedCode1) + C2PA,
  as the service runs it;
- full without the watermark: visible label + signed record + C2PA;
- verify: ``verify_file`` on the fully labelled file with ``NoLookup`` (record,
  C2PA with its trust anchor, ReservedCode1 check, watermark decode).

Targets: metadata only <= 0.2 of the baseline, full <= 1.5.

    .venv/bin/python benchmarks/image.py [--rounds 5] [--big-rounds 3] [--sizes 1,12] \
        [--update-docs]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from app.dev_credentials import ensure_dev_credentials
from benchmarks.common import (
    interleaved_medians,
    machine,
    ms,
    ratio,
    table,
    update_section,
)
from detectors.files import VerifyContext, verify_file
from detectors.lookup import NoLookup
from labelers.integrity import Keyring, RecordSigner
from labelers.limits import Limits
from labelers.pipeline import FileOptions, LabelContext, label_file
from labelers.provenance import C2paSigner
from labelers.record import Record
from tests.imagery import photo

PRODUCER = "0011911100007109120X0010001"
RECORD = Record.first_write(PRODUCER, "01JBENCHMARKIMAGE00000000")
PAYLOAD = 0x5EED_1234_ABCD_0042
SIZES = {1: (1152, 864), 12: (4000, 3000)}  # 1.0 MP and 12.0 MP, 4:3
LIMITS = Limits()
COMMAND = ".venv/bin/python benchmarks/image.py --rounds 5 --big-rounds 3 --update-docs"


def encode(img: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        img.save(out, "JPEG", quality=90)
    else:
        img.save(out, "PNG", compress_level=6)
    return out.getvalue()


def bare_roundtrip(data: bytes, fmt: str) -> bytes:
    out = io.BytesIO()
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        if fmt == "JPEG":
            img.save(out, "JPEG", quality="keep")
        else:
            img.save(out, "PNG", compress_level=6)
    return out.getvalue()


def measure(rounds: int, big_rounds: int, sizes: list[int]) -> list[list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        dev = ensure_dev_credentials(Path(tmp) / "c2pa")
        signer = C2paSigner.from_files(dev.chain_pem, dev.key_pem)
        anchors = dev.ca_pem.read_text()
        record_signer, _ = RecordSigner.load_or_create(Path(tmp) / "record.pem")
    keyring = Keyring()
    keyring.add(record_signer.public_key, {PRODUCER})

    meta_only = FileOptions(explicit=False, watermark=False, c2pa=False)
    no_mark = FileOptions(watermark=False)
    full = FileOptions()
    rows = []
    for mp in sizes:
        width, height = SIZES[mp]
        img = photo(width, height)
        for fmt in ("JPEG", "PNG"):
            data = encode(img, fmt)
            labelled = label_file(
                data,
                RECORD,
                full,
                LabelContext(signer=signer, record_signer=record_signer, limits=LIMITS),
                watermark_payload=PAYLOAD,
            )
            report = verify_file(
                labelled.data,
                VerifyContext(
                    NoLookup(), trust_anchors_pem=anchors, keyring=keyring, limits=LIMITS
                ),
                declared_ai=False,
            )
            assert report.classification == "confirmed", report.to_dict()
            assert report.integrity["c2pa"]["state"] == "Trusted", report.integrity
            jobs = {
                "baseline": lambda d=data, f=fmt: bare_roundtrip(d, f),
                "metadata": lambda d=data: label_file(
                    d, RECORD, meta_only, LabelContext(limits=LIMITS)
                ),
                "full": lambda d=data: label_file(
                    d,
                    RECORD,
                    full,
                    LabelContext(signer=signer, record_signer=record_signer, limits=LIMITS),
                    watermark_payload=PAYLOAD,
                ),
                "no-mark": lambda d=data: label_file(
                    d,
                    RECORD,
                    no_mark,
                    LabelContext(signer=signer, record_signer=record_signer, limits=LIMITS),
                    watermark_payload=PAYLOAD,
                ),
                "verify": lambda d=labelled.data: verify_file(
                    d,
                    VerifyContext(
                        NoLookup(), trust_anchors_pem=anchors, keyring=keyring, limits=LIMITS
                    ),
                    declared_ai=False,
                ),
            }
            t = interleaved_medians(jobs, rounds if mp < 10 else big_rounds)
            base = t["baseline"]
            rows.append(
                [
                    f"{mp} MP {fmt} ({width}x{height}, {len(data) // 1024} KB)",
                    ms(base),
                    f"{ratio(t['metadata'], base)} ({ms(t['metadata'])} ms)",
                    f"{ratio(t['full'], base)} ({ms(t['full'])} ms)",
                    f"{ratio(t['no-mark'], base)} ({ms(t['no-mark'])} ms)",
                    f"{ms(t['verify'])} ({ratio(t['verify'], base)})",
                ]
            )
            print(" | ".join(rows[-1]), file=sys.stderr)
    return rows


NOTES = (
    "Where the time goes (1 MP JPEG, stage by stage, 2026-11-26): decode 3.7 ms, encode "
    "2.8 ms, C2PA signing 1.3 ms, visible label 0.4 ms (cached glyph masks), record splice "
    "0.3 ms, content digest 0.2 ms, record signature 0.1 ms; with the watermark, its embed "
    "(~18 ms) dominates. Issue 3's full-labelling target (visible + metadata + C2PA, "
    "<= 1.5) is the no-watermark column; the watermark has its own targets (embed <= 50 ms, "
    "see Watermark). PNG sits near 1.0 because zlib dominates both sides. Metadata-only "
    "runs splice bytes and never decode pixels."
)

HEADERS = [
    "image",
    "baseline: Pillow decode+encode, ms",
    "metadata only (target <= 0.2)",
    "full: visible + watermark + record + C2PA (target <= 1.5)",
    "visible + record + C2PA, no watermark",
    "verify, ms per file (ratio)",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds (median kept)")
    ap.add_argument("--big-rounds", type=int, default=3, help="timed rounds at 12 MP")
    ap.add_argument("--sizes", default="1,12", help="megapixel sizes: 1, 12 or both")
    ap.add_argument("--update-docs", action="store_true", help="rewrite docs/benchmarks.md")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    load_before = machine()
    rows = measure(args.rounds, args.big_rounds, sizes)
    body = (
        "Labelling and verifying generated photo-like images (`labelers.pipeline.label_file`, "
        "`detectors.files.verify_file` with `NoLookup`), each cost as a ratio of a bare Pillow "
        'decode + encode of the same file (JPEG `quality="keep"`, PNG zlib level 6), '
        f"median of {args.rounds} (1 MP) or {args.big_rounds} (12 MP) interleaved rounds after "
        'one warm-up round. "full" signs '
        'the record (ReservedCode1) as the service does; "metadata only" has no signer.\n\n'
        + table(HEADERS, rows)
        + f"\n\n{NOTES}\n\nCommand: `{COMMAND}`\n\n"
        f"Machine before: {load_before}\n\nMachine after: {machine()}\n"
    )
    print(body)
    if args.update_docs:
        update_section("Images", body)


if __name__ == "__main__":
    main()
