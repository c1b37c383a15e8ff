"""Reading C2PA manifests with c2pa-python, and what they say.

:func:`read_manifest` verifies a file's manifest and says, separately,
whether the *content* changed after signing (hard-binding hash mismatch),
whether the *signer* is trusted, and whether the manifest itself is intact.
A real AI image whose credential is merely untrusted or expired is not an
altered image, and the report keeps those apart.
It also walks the whole manifest store (ingredients of any relationship,
by their ``active_manifest`` links, with depth and count limits) and sums
each manifest up with its validation in one word (:func:`validation_word`):
real exports often state their AI origin only below the active manifest.

A file whose manifest store is damaged is not an error when reading: it
yields a report with state ``Invalid`` and the code ``manifest.unreadable``
(ours, not a spec code).
"""

from __future__ import annotations

import functools
import io
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import c2pa
from cryptography import x509

from labelers.errors import CorruptInput, SigningError, UnsupportedMedia
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.provenance.builder import GB_ASSERTION_LABEL
from labelers.provenance.support import c2pa_message, has_manifest_marker, readable_media_types
from labelers.record import KEYS

# failure codes meaning "the bytes the manifest covers changed" (hard binding)
_CONTENT_HASH_MISMATCH = {
    "assertion.dataHash.mismatch",
    "assertion.bmffHash.mismatch",
    "assertion.boxesHash.mismatch",
    "assertion.collectionHash.mismatch",
}

UNREADABLE_CODE = "manifest.unreadable"


# ======================================================================= reading
@dataclass(frozen=True)
class ProvenanceReport:
    """What a file's active C2PA manifest says, and whether to believe it."""

    #: c2pa's verdict: "Trusted" (valid and signer anchored), "Valid" (valid,
    #: signer not anchored) or "Invalid" (something failed, see the flags)
    state: str
    #: the content hash (hard binding) does not match: bytes changed after signing
    content_altered: bool
    #: the signature verifies and its certificate chains to a trust anchor
    signer_trusted: bool
    #: claim, signature and assertions are undamaged (trust and content aside)
    manifest_intact: bool
    signer: str | None  # certificate common name, else issuer
    signer_issuer: str | None  # certificate issuer organisation
    claim_generator: str | None  # e.g. "aigc-label 0.1.0"
    title: str | None
    actions: list[str] = field(default_factory=list)  # e.g. ["c2pa.created"]
    digital_source_types: list[str] = field(default_factory=list)
    software_agents: list[str] = field(default_factory=list)
    gb_record: dict[str, Any] | None = None  # the cn.tc260.aigc assertion's data
    #: every failure c2pa reported, as {"code", "explanation"}
    validation_errors: list[dict[str, str]] = field(default_factory=list)
    #: the active manifest's direct ingredients, e.g. the producer's file a
    #: platform re-signed. Each: "title" (else its manifest's), "relationship"
    #: ("parentOf", ...), "format", "active_manifest" (its manifest's label;
    #: None without provenance), "claim_generator", "signer", "actions",
    #: "gb_record", "validation_state" ("Trusted"/"Valid"/"Invalid"; None
    #: without a manifest), "content_altered" (its bytes no longer matched its
    #: manifest when it was taken in), "validation_errors" (codes)
    ingredients: list[dict[str, Any]] = field(default_factory=list)
    #: the active manifest's validation in one word (see :func:`validation_word`)
    validation: str = "invalid"
    #: every manifest reachable from the active one through ingredients'
    #: ``active_manifest`` links, breadth first (see :func:`_chain`)
    manifests: list[dict[str, Any]] = field(default_factory=list)
    #: the chain was longer or deeper than the limits and was cut there
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, Any]:
        """The report's ``c2pa`` object: the active label, its validation, the walked chain."""
        active = next((m["label"] for m in self.manifests if m["active"]), None)
        return {
            "active": active,
            "validation": self.validation,
            "truncated": self.truncated,
            "manifests": self.manifests,
        }


def read_manifest(
    data: bytes,
    media_type: str,
    trust_anchors_pem: str | None = None,
    *,
    limits: Limits = DEFAULT_LIMITS,
) -> ProvenanceReport | None:
    """Verify and summarise the C2PA manifest in ``data``; None if it has none.

    ``trust_anchors_pem`` (PEM CA certificates) decides ``signer_trusted``;
    without it every signer is untrusted, yet an unaltered file still reads
    ``content_altered=False``. Nothing is fetched from the network (no
    remote manifests, no OCSP). A damaged manifest yields a report with
    state "Invalid"; bytes c2pa cannot read at all raise CorruptInput.
    """
    if media_type not in readable_media_types():
        raise UnsupportedMedia(f"C2PA manifests cannot be read from {media_type} files")
    if not data:
        raise CorruptInput("the file is empty")
    limits.check("max_bytes", len(data), "the file")
    context = _reader_context(trust_anchors_pem)
    try:
        reader = c2pa.Reader.try_create(media_type, io.BytesIO(data), None, context)
        if reader is None:
            store = None
        else:
            with reader:
                store = json.loads(reader.json())
    except c2pa.C2paError as exc:
        if has_manifest_marker(data):
            return _unreadable_report(f"c2pa could not parse it: {c2pa_message(exc)}")
        raise CorruptInput(
            f"c2pa could not read this {media_type} file: {c2pa_message(exc)}"
        ) from None
    except ValueError as exc:  # json from c2pa that does not parse
        return _unreadable_report(f"c2pa returned unreadable JSON: {exc}")
    if store is None:
        if has_manifest_marker(data):
            return _unreadable_report(
                "the file contains C2PA manifest labels but c2pa found no manifest store"
            )
        return None
    return _report_from_store(store)


def _reader_context(trust_anchors_pem: str | None) -> c2pa.Context:
    settings: dict[str, Any] = {
        # verification must stay offline and deterministic
        "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
    }
    if trust_anchors_pem:
        _check_trust_anchors(trust_anchors_pem)
        settings["trust"] = {"user_anchors": trust_anchors_pem}
    # a Context per call: cheap (~0.1 ms) and never shared between threads
    return c2pa.Context(c2pa.Settings.from_dict(settings))


@functools.lru_cache(maxsize=16)
def _check_trust_anchors(pem: str) -> None:
    # c2pa silently ignores anchors it cannot parse, which would make every
    # signer look untrusted for a configuration typo; say so instead
    try:
        x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise SigningError(
            "the C2PA trust anchors are not PEM X.509 certificates "
            "(expected -----BEGIN CERTIFICATE----- blocks)"
        ) from None


def _unreadable_report(why: str) -> ProvenanceReport:
    return ProvenanceReport(
        validation="invalid",
        state="Invalid",
        content_altered=False,
        signer_trusted=False,
        manifest_intact=False,
        signer=None,
        signer_issuer=None,
        claim_generator=None,
        title=None,
        validation_errors=[
            {"code": UNREADABLE_CODE, "explanation": f"the C2PA manifest is damaged: {why}"}
        ],
    )


def _report_from_store(store: dict[str, Any]) -> ProvenanceReport:
    manifests = store.get("manifests") or {}
    active = manifests.get(store.get("active_manifest") or "") or {}
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    failures: list[dict[str, Any]] = list(results.get("failure") or [])
    seen = {(f.get("code"), f.get("url")) for f in failures}
    # older or partial stores only carry the flat validation_status list
    for status in store.get("validation_status") or []:
        if (status.get("code"), status.get("url")) not in seen:
            failures.append(status)
    failure_codes = [str(f.get("code", "")) for f in failures]
    success_codes = {str(s.get("code", "")) for s in results.get("success") or []}

    content_altered = any(code in _CONTENT_HASH_MISMATCH for code in failure_codes)
    signer_trusted = "signingCredential.trusted" in success_codes and not any(
        code.startswith(("signingCredential.", "claimSignature.")) for code in failure_codes
    )
    manifest_intact = bool(active) and not any(
        code not in _CONTENT_HASH_MISMATCH
        and not code.startswith(("signingCredential.", "timeStamp."))
        for code in failure_codes
    )
    state = store.get("validation_state") or ("Invalid" if failures else "Valid")

    actions, source_types, agents, gb_record = _summarise_assertions(active)
    sig = active.get("signature_info") or {}
    active_label = str(store.get("active_manifest") or "")
    manifests, truncated = _chain(store, active_label, failure_codes, signer_trusted)
    return ProvenanceReport(
        validation=validation_word(failure_codes, signer_trusted) if active else "invalid",
        manifests=manifests,
        truncated=truncated,
        state=str(state),
        content_altered=content_altered,
        signer_trusted=signer_trusted,
        manifest_intact=manifest_intact,
        signer=sig.get("common_name") or sig.get("issuer"),
        signer_issuer=sig.get("issuer"),
        claim_generator=_claim_generator(active),
        title=active.get("title"),
        actions=actions,
        digital_source_types=source_types,
        software_agents=agents,
        gb_record=gb_record,
        validation_errors=[
            {"code": str(f.get("code", "")), "explanation": str(f.get("explanation", ""))}
            for f in failures
        ],
        ingredients=_ingredients(store, active_label, active),
    )


#: how far down the ingredient chain :func:`_chain` reads, and how many
#: manifests in all: real exports nest two or three deep; a store built to
#: make a verifier walk forever stops here
MAX_CHAIN_DEPTH = 8

MAX_CHAIN_MANIFESTS = 64

# failure codes that say the certificate, not the content, is the problem
_CERTIFICATE_EXPIRED = ("signingCredential.expired", "claimSignature.outsideValidity")

# informational failures that say nothing about content, claim or certificate
_NOT_DECISIVE = ("timeStamp.untrusted", "timeStamp.outsideValidity", "timeStamp.malformed")


def validation_word(failure_codes: list[str], trusted: bool) -> str:
    """One manifest's validation in the report's vocabulary.

    ``content-altered``: the hard binding no longer matches (bytes changed
    after signing); ``invalid``: the claim, its signature or its assertions
    are damaged; ``certificate-expired`` / ``certificate-invalid``: the
    content and claim hold but the signer's certificate is outside its
    validity or unusable; ``trusted``: all holds and the signer chains to a
    trust anchor; ``valid-untrusted``: all holds, the signer is simply not in
    the trust list (what most real exports read as without one).
    """
    codes = [
        c
        for c in failure_codes
        if c not in ("signingCredential.untrusted", "signingCredential.trusted")
        and not c.startswith(_NOT_DECISIVE)
    ]
    if any(c in _CONTENT_HASH_MISMATCH for c in codes):
        return "content-altered"
    certificate = [
        c for c in codes if c.startswith("signingCredential.") or c in _CERTIFICATE_EXPIRED
    ]
    if [c for c in codes if c not in certificate]:
        return "invalid"
    if any(c.startswith(_CERTIFICATE_EXPIRED) for c in certificate):
        return "certificate-expired"
    if certificate:
        return "certificate-invalid"
    return "trusted" if trusted else "valid-untrusted"


def _chain(
    store: dict[str, Any], active_label: str, active_failures: list[str], active_trusted: bool
) -> tuple[list[dict[str, Any]], bool]:
    """Every manifest reachable from the active one, breadth first, with limits.

    Real exports often carry the AI origin only below the active manifest
    (ChatGPT: ``c2pa.opened`` over a ``parentOf`` ingredient that was
    ``c2pa.created``; Gemini: two levels down), so a verifier must read the
    whole chain. Each manifest is read once (a store may link one twice, or in
    a loop); each summary says its depth and how it was validated: the active
    one by this reader, an ingredient's by what its taker recorded plus what
    this reader re-checked (:func:`_ingredient_validation`).
    """
    manifests = store.get("manifests") or {}
    deltas: dict[str, dict[str, Any]] = {}
    for delta in (store.get("validation_results") or {}).get("ingredientDeltas") or []:
        if isinstance(delta, dict) and isinstance(delta.get("validationDeltas"), dict):
            deltas[str(delta.get("ingredientAssertionURI"))] = delta["validationDeltas"]
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    # (label, depth, validation word, codes, held by, relationship)
    queue: list[tuple[str, int, str, list[str], str | None, str | None]] = [
        (
            active_label,
            0,
            validation_word(active_failures, active_trusted),
            list(dict.fromkeys(active_failures)),
            None,
            None,
        )
    ]
    truncated = False
    while queue:
        label, depth, word, codes, parent, relationship = queue.pop(0)
        manifest = manifests.get(label)
        if label in seen or not isinstance(manifest, dict):
            continue
        if len(out) >= MAX_CHAIN_MANIFESTS:
            truncated = True
            break
        seen.add(label)
        summary = _manifest_summary(label, manifest, depth, word, codes)
        summary["ingredient_of"] = parent
        summary["relationship"] = relationship
        out.append(summary)
        for ingredient in manifest.get("ingredients") or []:
            if not isinstance(ingredient, dict) or not ingredient.get("active_manifest"):
                continue
            child = str(ingredient["active_manifest"])
            if child in seen:
                continue
            if depth + 1 > MAX_CHAIN_DEPTH:
                truncated = True
                continue
            uri = f"self#jumbf=/c2pa/{label}/c2pa.assertions/{ingredient.get('label')}"
            state, _, child_codes = _ingredient_validation(
                ingredient.get("validation_results"), deltas.get(uri), True
            )
            child_word = validation_word(child_codes, state == "Trusted")
            queue.append(
                (child, depth + 1, child_word, child_codes, label, ingredient.get("relationship"))
            )
    return out, truncated


def _manifest_summary(
    label: str, manifest: dict[str, Any], depth: int, word: str, codes: list[str]
) -> dict[str, Any]:
    sig = manifest.get("signature_info") or {}
    actions: list[dict[str, Any]] = []
    for assertion in manifest.get("assertions") or []:
        if not isinstance(assertion, dict):
            continue
        base = str(assertion.get("label", "")).split("__", 1)[0]
        body = assertion.get("data")
        if base not in ("c2pa.actions", "c2pa.actions.v2") or not isinstance(body, dict):
            continue
        for action in body.get("actions") or []:
            if isinstance(action, dict) and action.get("action"):
                actions.append(
                    {
                        "action": str(action["action"]),
                        "digital_source_type": (
                            str(action["digitalSourceType"])
                            if action.get("digitalSourceType")
                            else None
                        ),
                        "software_agent": _agent_name(action.get("softwareAgent")),
                    }
                )
    ingredients = [
        {
            "title": ingredient.get("title"),
            "relationship": ingredient.get("relationship"),
            "manifest": ingredient.get("active_manifest") or None,
        }
        for ingredient in manifest.get("ingredients") or []
        if isinstance(ingredient, dict)
    ]
    return {
        "label": label,
        "active": depth == 0,
        "depth": depth,
        "title": manifest.get("title"),
        "claim_generator": _claim_generator(manifest),
        "signer": {
            "issuer": sig.get("issuer"),
            "common_name": sig.get("common_name"),
        },
        "actions": actions,
        "ingredients": ingredients,
        "validation": word,
        "validation_codes": codes,
    }


def _summarise_assertions(
    manifest: dict[str, Any],
) -> tuple[list[str], list[str], list[str], dict[str, Any] | None]:
    """(actions, digital source types, software agents, GB record) of one manifest."""
    actions: list[str] = []
    source_types: list[str] = []
    agents: list[str] = []
    gb_record: dict[str, Any] | None = None
    for assertion in manifest.get("assertions") or []:
        if not isinstance(assertion, dict):
            continue
        label = str(assertion.get("label", ""))
        body = assertion.get("data")
        base = label.split("__", 1)[0]  # c2pa suffixes repeated labels with __1, __2
        if base in ("c2pa.actions", "c2pa.actions.v2") and isinstance(body, dict):
            for action in body.get("actions") or []:
                if not isinstance(action, dict):
                    continue
                if action.get("action"):
                    actions.append(str(action["action"]))
                if action.get("digitalSourceType"):
                    source_types.append(str(action["digitalSourceType"]))
                agent = _agent_name(action.get("softwareAgent"))
                if agent:
                    agents.append(agent)
        elif base == GB_ASSERTION_LABEL and gb_record is None and isinstance(body, dict):
            gb_record = _annex_e_order(body)
    return actions, source_types, agents, gb_record


def _ingredients(
    store: dict[str, Any], active_label: str, active: dict[str, Any]
) -> list[dict[str, Any]]:
    """Summaries of the active manifest's direct ingredients (see ProvenanceReport)."""
    manifests = store.get("manifests") or {}
    # what this reader found when it re-checked each ingredient's manifest (its
    # own trust anchors), keyed by the ingredient assertion's URI
    deltas: dict[str, dict[str, Any]] = {}
    for delta in (store.get("validation_results") or {}).get("ingredientDeltas") or []:
        if isinstance(delta, dict) and isinstance(delta.get("validationDeltas"), dict):
            deltas[str(delta.get("ingredientAssertionURI"))] = delta["validationDeltas"]
    out: list[dict[str, Any]] = []
    for ingredient in active.get("ingredients") or []:
        if not isinstance(ingredient, dict):
            continue
        label = ingredient.get("active_manifest")
        manifest = manifests.get(label) if label else None
        if not isinstance(manifest, dict):
            manifest = {}
        actions, _, _, gb_record = _summarise_assertions(manifest)
        uri = f"self#jumbf=/c2pa/{active_label}/c2pa.assertions/{ingredient.get('label')}"
        state, altered, codes = _ingredient_validation(
            ingredient.get("validation_results"), deltas.get(uri), bool(label)
        )
        out.append(
            {
                # c2pa does not copy the parent's title into the ingredient
                "title": ingredient.get("title") or manifest.get("title"),
                "relationship": ingredient.get("relationship"),
                "format": ingredient.get("format"),
                "active_manifest": label or None,
                "claim_generator": _claim_generator(manifest) if manifest else None,
                "signer": (manifest.get("signature_info") or {}).get("common_name"),
                "actions": actions,
                "gb_record": gb_record,
                "validation_state": state,
                "content_altered": altered,
                "validation_errors": codes,
            }
        )
    return out


def _ingredient_validation(
    recorded: Any, delta: dict[str, Any] | None, has_manifest: bool
) -> tuple[str | None, bool, list[str]]:
    """(state, content altered, failure codes) of one ingredient's manifest.

    c2pa reports no per-ingredient state, only what the signer recorded when
    it took the ingredient in (``validation_results``: the hash check against
    the parent's bytes, which only that moment could do, and trust as the
    signer saw it) and what this reader re-checked (the delta: manifest
    integrity, and trust against this reader's anchors). The reader's view of
    trust replaces the signer's.
    """
    if not has_manifest:
        return None, False, []
    results = (recorded or {}).get("activeManifest") if isinstance(recorded, dict) else None
    results = results if isinstance(results, dict) else {}
    recorded_failures = [str(f.get("code", "")) for f in results.get("failure") or []]
    recorded_successes = {str(s.get("code", "")) for s in results.get("success") or []}
    if delta is None:
        trusted = "signingCredential.trusted" in recorded_successes
        fresh_failures: list[str] = []
    else:
        # this reader's trust verdict counts, not the one the signer recorded
        # (a reader without anchors trusts nobody, whatever the signer saw)
        trusted = "signingCredential.trusted" in {
            str(s.get("code", "")) for s in delta.get("success") or []
        }
        fresh_failures = [str(f.get("code", "")) for f in delta.get("failure") or []]
    failures = [
        code
        for code in dict.fromkeys(recorded_failures + fresh_failures)  # c2pa repeats codes
        if code not in ("signingCredential.untrusted", "signingCredential.trusted")
    ]
    altered = any(code in _CONTENT_HASH_MISMATCH for code in failures)
    state = "Invalid" if failures else "Trusted" if trusted else "Valid"
    if not trusted:
        failures.append("signingCredential.untrusted")  # as the active manifest's report says
    return state, altered, failures


def _agent_name(agent: Any) -> str | None:
    if isinstance(agent, str):
        return agent or None
    if isinstance(agent, dict) and agent.get("name"):
        version = agent.get("version")
        return f"{agent['name']} {version}" if version else str(agent["name"])
    return None


def _claim_generator(active: dict[str, Any]) -> str | None:
    info = active.get("claim_generator_info")
    if isinstance(info, list) and info and isinstance(info[0], dict) and info[0].get("name"):
        return _agent_name(info[0])
    legacy = active.get("claim_generator")
    return str(legacy) if legacy else None


def _annex_e_order(body: dict[str, Any]) -> dict[str, Any]:
    # CBOR gives the keys back sorted; show them in the standard's order
    ordered = {k: body[k] for k in KEYS if k in body}
    ordered.update({k: v for k, v in body.items() if k not in ordered})
    return ordered
