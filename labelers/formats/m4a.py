"""M4A/M4B audio: the ISO-BMFF movie container of labelers.formats.isobmff, kind audio.

The bytes are the same as a video MP4's (the record as the ``mdta`` key
``AIGC`` in ``moov/udta/meta``); only the kind differs, so the pipeline
dispatches it to the audio stages. Registered as its own line so that sniffing
tells the two apart by the ``ftyp`` brand.
"""

from labelers.formats.isobmff import AUDIO_HANDLER as HANDLER

__all__ = ["HANDLER"]
