"""M4A/M4B audio: the ISO-BMFF movie container of labelers.formats.isobmff, kind audio.

The bytes are the same as a video MP4's (the record as the ``mdta`` key
``AIGC`` in ``moov/udta/meta``); only the kind differs, so the pipeline
dispatches it to the audio stages. Registered as its own line so that sniffing
tells the two apart by the ``ftyp`` brand.
"""

from labelers.formats import AUDIO_CAPABILITIES, Capability, Kind
from labelers.formats.isobmff import IsoBmffHandler

#: the audio kind's stages (audible label, watermark: labelers.kinds.audio) and C2PA
HANDLER = IsoBmffHandler(Kind.AUDIO, "M4A", AUDIO_CAPABILITIES | {Capability.C2PA})
