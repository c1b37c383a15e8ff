"""Small PNG previews of what a file shows, for people (the moderators' page).

A browser draws JPEG, PNG, WebP, GIF and AVIF itself; it cannot draw TIFF,
HEIF or a PDF page without a viewer plugin, and the page loads nothing from a
CDN. This module renders those through the libraries the service already
trusts with untrusted bytes: images through :func:`labelers.imaging.open_raster`
(its size and frame budgets are checked before decoding) and shown upright
(EXIF orientation applied), PDFs through :func:`labelers.formats.pdf.open_pdf`
(size, encryption and page budgets) and then PDFium (``pypdfium2``) for the
pixels of page 1.

``source_size`` is the size the preview stands for, in the units the verify
report measures in (image pixels as viewed; PDF points), so a box the report
gives can be drawn on the scaled-down preview.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass

from PIL import Image

from labelers.errors import CorruptInput, UnsupportedMedia
from labelers.formats import Capability, Kind, sniff_handler
from labelers.imaging import ORIENTATION_TRANSPOSE, open_raster
from labelers.limits import DEFAULT_LIMITS, Limits

#: longest side of a preview, in pixels: enough for a card on a wide screen
PREVIEW_MAX_SIDE = 1024
# PDFium is not thread-safe: one render at a time per process
_PDFIUM_LOCK = threading.Lock()


@dataclass(frozen=True)
class Preview:
    png: bytes
    media_type: str  # of the source file, sniffed
    source_size: tuple[int, int]  # image: pixels as viewed; PDF: page 1 in points


def render_preview(
    data: bytes, limits: Limits = DEFAULT_LIMITS, max_side: int = PREVIEW_MAX_SIDE
) -> Preview:
    """A PNG of ``data`` as a viewer shows it (images) or of its first page (PDF).

    Raises UnsupportedMedia for content that has no picture (text, office
    documents), CorruptInput, EncryptedInput or LimitExceeded for bad input.
    """
    handler, media_type = sniff_handler(data)
    if handler.kind == Kind.IMAGE:
        picture = _image(data, media_type, limits)
        source_size = picture.size
    elif Capability.PAGE_RENDER in handler.capabilities:
        picture, source_size = _pdf_first_page(data, limits, max_side)
    else:
        raise UnsupportedMedia(f"{media_type} content has no picture to preview")
    picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    if picture.mode not in ("RGB", "RGBA", "L", "LA"):
        picture = picture.convert("RGBA" if "A" in picture.getbands() else "RGB")
    out = io.BytesIO()
    picture.save(out, "PNG", optimize=False, compress_level=3)
    return Preview(out.getvalue(), media_type, source_size)


def _image(data: bytes, media_type: str, limits: Limits) -> Image.Image:
    raster = open_raster(data, media_type, limits)
    shown = raster.frames[0]
    if raster.orientation in ORIENTATION_TRANSPOSE:
        shown = shown.transpose(ORIENTATION_TRANSPOSE[raster.orientation])
    return shown


def _pdf_first_page(
    data: bytes, limits: Limits, max_side: int
) -> tuple[Image.Image, tuple[int, int]]:
    """Page 1's pixels, and its size in points."""
    import pypdfium2 as pdfium

    from labelers.formats.pdf import guarded, open_pdf

    # the PDF module's own checks first: size, encryption, page-count budget
    with guarded(limits, "opening the PDF for a preview"):
        open_pdf(data, limits)
    with _PDFIUM_LOCK:
        try:
            document = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            raise CorruptInput(f"PDF page 1 cannot be rendered: {exc}") from None
        try:
            if len(document) == 0:
                raise CorruptInput("PDF has no pages")
            page = document[0]
            width, height = page.get_size()
            if not (width > 0 and height > 0):
                raise CorruptInput(f"PDF page 1 has an empty size {width}x{height}")
            # bounded output whatever the page size claims (a page can be 200 inches)
            scale = min(2.0, max_side / max(width, height))
            picture = page.render(scale=scale).to_pil()
            page.close()
        except pdfium.PdfiumError as exc:
            raise CorruptInput(f"PDF page 1 cannot be rendered: {exc}") from None
        finally:
            document.close()
    return picture, (round(width), round(height))
