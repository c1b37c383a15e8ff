"""Cost of the visible-mark finder per real image, as a ratio of a bare Pillow decode.

For each real image (the generator files of ``../shared/corpus/wild/`` and
scikit-image's bundled photographs, all stripped to JPEG q90 pixels as a
re-upload leaves them) three jobs are timed in interleaved rounds:

- the baseline: a bare Pillow decode of the file (``Image.open(...).load()``);
- the cheap stage: the edge analysis on the decoded image (reduced copy, ink
  masks, candidate lines; ``detectors.ocr.analyse``) plus the brand-mark
  templates (``detectors.marks.find_brand_marks``), no OCR;
- the whole finder: the cheap stage plus OCR of the candidate lines
  (``detectors.ocr.find_visible_label``), as ``verify`` runs it.

The table gives each image's ratios and the p50 / p95 over all images.

    .venv/bin/python benchmarks/visible.py [--rounds 3] [--update-docs]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import ROOT, interleaved_medians, machine, ms, table, update_section
from detectors.marks import find_brand_marks
from detectors.ocr import analyse, find_visible_label, ocr_available

WILD = ROOT / ".." / "shared" / "corpus" / "wild"
SKIMAGE = [
    "astronaut",
    "page",
    "text",
    "coffee",
    "chelsea",
    "camera",
    "rocket",
    "hubble_deep_field",
]
COMMAND = ".venv/bin/python benchmarks/visible.py --rounds 3 --update-docs"


def stripped(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def real_images() -> list[tuple[str, bytes]]:
    out = []
    if WILD.is_dir():
        for path in sorted(WILD.iterdir()):
            if path.suffix in (".png", ".jpg"):
                out.append((path.name, stripped(Image.open(path))))
    from skimage import data

    for name in SKIMAGE:
        array = getattr(data, name)()
        if array.dtype != np.uint8:
            array = (array * 255 if array.max() <= 1 else array).astype(np.uint8)
        out.append((f"skimage {name}", stripped(Image.fromarray(array))))
    return out


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--update-docs", action="store_true", help="rewrite docs/benchmarks.md")
    args = ap.parse_args()
    if not ocr_available():
        raise SystemExit("tesseract with chi_sim is needed to time the whole finder")
    before = machine()
    rows, cheap_ratios, full_ratios = [], [], []
    for name, data in real_images():
        image = Image.open(io.BytesIO(data))
        image.load()

        def decode(data: bytes = data) -> None:
            Image.open(io.BytesIO(data)).load()

        def cheap(image: Image.Image = image) -> None:
            find_brand_marks(analyse(image))

        def whole(image: Image.Image = image) -> None:
            analysis = analyse(image)
            find_visible_label(image, analysis=analysis)
            find_brand_marks(analysis)

        times = interleaved_medians(
            {"decode": decode, "cheap": cheap, "whole": whole}, rounds=args.rounds
        )
        candidates = len(analyse(image).blocks[:8])
        cheap_ratios.append(times["cheap"] / times["decode"])
        full_ratios.append(times["whole"] / times["decode"])
        rows.append(
            [
                f"{name} ({image.width}x{image.height})",
                ms(times["decode"]),
                f"{cheap_ratios[-1]:.1f} ({ms(times['cheap'])} ms)",
                f"{full_ratios[-1]:.1f} ({ms(times['whole'])} ms)",
                candidates,
            ]
        )
    rows.append(
        [
            "**p50 / p95 over the images**",
            "",
            f"**{statistics.median(cheap_ratios):.1f} / {percentile(cheap_ratios, 95):.1f}**",
            f"**{statistics.median(full_ratios):.1f} / {percentile(full_ratios, 95):.1f}**",
            "",
        ]
    )
    after = machine()
    body = "\n\n".join(
        [
            "The visible-mark finder of `verify` (OCR of text lines at the edges and corners, "
            "brand-mark templates) on real images stripped to JPEG q90 pixels: the generator "
            "files of `../shared/corpus/wild/` and scikit-image photographs. Each cost is a "
            "ratio of a bare Pillow decode of the same file (`Image.open(...).load()`), "
            f"median of {args.rounds} interleaved rounds after one warm-up round. "
            '"cheap stage" is the OCR-free edge analysis (reduced copy of 720 px on the '
            "shortest side, ink masks, candidate lines) plus the templates; "
            '"whole finder" adds one tesseract run over the candidate lines (at most 8), '
            "which is most of the time whenever any candidate is found.",
            table(
                [
                    "image",
                    "baseline: Pillow decode, ms",
                    "cheap stage (no OCR)",
                    "whole finder (with OCR)",
                    "lines sent to OCR",
                ],
                rows,
            ),
            f"Command: `{COMMAND}`",
            f"Machine before: {before}",
            f"Machine after: {after}",
        ]
    )
    print(body)
    if args.update_docs:
        update_section("Visible-mark finder", body)


if __name__ == "__main__":
    main()
