"""Other generators' traces: what popular AI tools leave in files they write.

These make content *suspected* AI-generated (Measures Art. 6(3)) when no
record is present. The patterns come from the tools' own output conventions.
"""

from __future__ import annotations

import re

from detectors.report import IPTC, TRACE, Evidence

IPTC_AI_SOURCE_TYPES = {
    "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia": "trained model",
    "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia": (
        "composite including trained-model output"
    ),
}

# property key (as format handlers name them) -> which tool writes it
_TRACE_KEYS = {
    "png:tEXt:parameters": "Stable Diffusion WebUI (AUTOMATIC1111/Forge) generation parameters",
    "png:tEXt:prompt": "ComfyUI prompt graph",
    "png:tEXt:workflow": "ComfyUI workflow",
    "png:tEXt:invokeai_metadata": "InvokeAI metadata",
    "png:tEXt:sd-metadata": "InvokeAI (legacy) metadata",
    "png:tEXt:Dream": "InvokeAI (legacy) dream prompt",
    "png:tEXt:generation_data": "Fooocus/NovelAI generation data",
}
_SOFTWARE_KEYS = (
    "exif:Software",
    "exif:Make",
    "exif:Model",
    "exif:Artist",
    "png:tEXt:Software",
    "png:tEXt:Source",
    "xmp:CreatorTool",
    "pdf:Info:/Producer",
    "pdf:Info:/Creator",
    "ooxml:app:Application",
)
_KNOWN_GENERATORS = re.compile(
    r"midjourney|dall[\s·\-]?e|stable[\s\-]?diffusion|novelai|firefly|imagen|"
    r"\bflux\b|comfyui|automatic1111|invokeai|leonardo\.ai|ideogram|chatgpt|openai|"
    r"gemini|kling|jimeng|即梦|通义万相|文心一格|doubao|豆包|hunyuan|混元|kolors|可图",
    re.IGNORECASE,
)


def generator_traces(properties: dict[str, str]) -> list[Evidence]:
    out = []
    for key, tool in _TRACE_KEYS.items():
        value = properties.get(key)
        if value:
            out.append(Evidence(TRACE, key, f"{tool} found", {"excerpt": value[:200]}))
    for key in _SOFTWARE_KEYS:
        value = properties.get(key, "")
        match = _KNOWN_GENERATORS.search(value)
        if match:
            out.append(
                Evidence(
                    TRACE,
                    key,
                    f"written by a known AI generator ({match.group(0)})",
                    {"value": value[:200]},
                )
            )
    return out


def iptc_evidence(source_type: str | None) -> list[Evidence]:
    if not source_type:
        return []
    meaning = IPTC_AI_SOURCE_TYPES.get(source_type)
    return [
        Evidence(
            IPTC,
            "xmp:Iptc4xmpExt:DigitalSourceType",
            f"IPTC digital source type: {meaning or source_type.rsplit('/', 1)[-1]}",
            {"digital_source_type": source_type, "ai": meaning is not None},
        )
    ]
