"""The manifest definitions c2pa's Builder signs: the first manifest of a file a
generator made ("created by a trained algorithm", IPTC digital source type
``trainedAlgorithmicMedia``, with the GB 45438 Annex E record as the custom
assertion ``cn.tc260.aigc``), and a platform's update manifest whose
``parentOf`` ingredient is the file as received.
"""

from __future__ import annotations

import re
from importlib import metadata
from typing import Any

from labelers.errors import InvalidOption
from labelers.record import Record

#: label of the custom assertion that carries the Annex E record
GB_ASSERTION_LABEL = "cn.tc260.aigc"

#: IPTC digital source type for content made by a trained model (GB 45438 "AI-generated")
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"

CLAIM_GENERATOR = "aigc-label"


try:
    _VERSION = metadata.version("aigc-label")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    _VERSION = "0+unknown"


# actions a manifest opens with (c2pa requires one of them first); sign_update
# writes them itself, so they are not accepted as the platform's action
_FIRST_ACTIONS = {"c2pa.created", "c2pa.opened"}

# the ingredient id that links the c2pa.opened action to the parent ingredient
PARENT_ID = "parent"


def build_manifest(record: Record, software_agent: str, title: str | None) -> dict[str, Any]:
    """The manifest definition :meth:`C2paSigner.sign` embeds."""
    manifest: dict[str, Any] = {
        "claim_generator_info": [{"name": CLAIM_GENERATOR, "version": _VERSION}],
        "assertions": [
            {
                "label": "c2pa.actions.v2",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                            # actions v2 describes the agent as generator info, not a string
                            "softwareAgent": {"name": software_agent},
                        }
                    ]
                },
            },
            {"label": GB_ASSERTION_LABEL, "data": record.as_dict()},
        ],
    }
    if title:
        manifest["title"] = title
    return manifest


def build_update_manifest(
    record: Record, software_agent: str, action: str, *, has_parent: bool
) -> dict[str, Any]:
    """The manifest definition :meth:`C2paSigner.sign_update` embeds.

    c2pa requires the first action to be ``c2pa.created`` or ``c2pa.opened``
    (it refuses to sign otherwise), so the platform's action comes second.
    """
    first: dict[str, Any]
    if has_parent:
        first = {"action": "c2pa.opened", "parameters": {"ingredientIds": [PARENT_ID]}}
    else:
        first = {"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA}
    update = {"action": action, "softwareAgent": {"name": software_agent}}
    return {
        "claim_generator_info": [{"name": CLAIM_GENERATOR, "version": _VERSION}],
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": [first, update]}},
            {"label": GB_ASSERTION_LABEL, "data": record.as_dict()},
        ],
    }


_ACTION_NAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+")


def check_update_action(action: str) -> None:
    if not isinstance(action, str) or not _ACTION_NAME.fullmatch(action) or len(action) > 100:
        raise InvalidOption(
            f"action {action!r} is not a C2PA action name (such as c2pa.published, "
            "c2pa.edited or a reverse-domain name like com.example.reviewed)"
        )
    if action in _FIRST_ACTIONS:
        raise InvalidOption(
            f"action {action!r} cannot describe an update; use c2pa.published when only "
            "metadata changed or c2pa.edited when the content changed"
        )
