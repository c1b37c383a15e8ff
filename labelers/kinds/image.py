"""The content stage of images: the visible label drawn on every frame, then the watermark."""

from __future__ import annotations

from typing import TYPE_CHECKING

from labelers.errors import UnsupportedMedia
from labelers.formats import Capability, Kind, capabilities_of
from labelers.kinds import KINDS

if TYPE_CHECKING:
    from labelers.formats import FormatHandler
    from labelers.imaging import Raster
    from labelers.limits import Limits
    from labelers.pipeline import FileOptions, FileResult


def apply(
    result: FileResult,
    handler: FormatHandler,
    options: FileOptions,
    watermark_key: int | None,
    limits: Limits,
) -> None:
    position = KINDS[Kind.IMAGE].position(options.position)
    # no encoder for the type (HEIC): its pixels cannot be rewritten at all
    encodable = Capability.VISIBLE in capabilities_of(handler, result.media_type)
    if options.explicit and not encodable:
        raise UnsupportedMedia(
            f"a visible label cannot be drawn on {result.media_type} here (no encoder for "
            "it): label it with the explicit label omitted, for the record and C2PA only, "
            "or send JPEG, PNG, WebP, TIFF or AVIF"
        )
    want_mark = options.watermark and watermark_key is not None
    if options.watermark and watermark_key is None:
        result.watermark = "off: no watermark key given"
    elif want_mark and not encodable:
        result.watermark = f"not available for {result.media_type}: no encoder for it here"
        want_mark = False
    if not options.explicit and not want_mark:
        return
    from labelers.imaging import open_raster, save_raster
    from labelers.visible.image import label_frames

    raster = open_raster(result.data, result.media_type, limits)
    if options.explicit:
        raster = label_frames(raster, options.wording, position)
        result.explicit = position
    if want_mark:
        assert watermark_key is not None
        result.watermark, result.watermark_key = _embed_watermark(raster, handler, watermark_key)
    result.data = save_raster(raster)


def _embed_watermark(
    raster: Raster, handler: FormatHandler, payload: int
) -> tuple[str, int | None]:
    from labelers.imaging import MARKABLE_MODES, luminance_plane, with_luminance
    from labelers.watermark import image as image_watermark

    width, height = raster.frames[0].size
    if min(width, height) < image_watermark.MIN_SIDE:
        return (
            f"skipped: the image's shorter side is {min(width, height)} px, "
            f"below the watermark minimum of {image_watermark.MIN_SIDE} px"
        ), None
    if Capability.WATERMARK not in handler.capabilities or len(raster.frames) > 1:
        # palettes (GIF, the one image format without the capability) and
        # frame-difference coding quantise the mark away
        return "skipped: GIF and animated images cannot carry the invisible watermark", None
    frame = raster.frames[0]
    # CMYK, 16-bit grey, LAB: marked in the luminance the mode has, kept in its mode
    plane = frame if frame.mode in MARKABLE_MODES else luminance_plane(frame)
    if plane is None:
        return f"skipped: {frame.mode} images have no luminance the watermark can live in", None
    # relabelling a marked image: a second mark on top would interfere with
    # the first and neither might decode; keep the one there, whose key the
    # ledger already maps to the image's first label. Looked for where our embedder
    # puts it: the full geometric search would cost most of the label
    found = image_watermark.decode_unmoved(plane)
    if found is not None:
        return f"kept: the image already carries watermark key {found.payload:016x}", found.payload
    marked = image_watermark.embed(plane, payload)
    raster.frames[0] = marked if plane is frame else with_luminance(frame, plane, marked)
    return "embedded", payload
