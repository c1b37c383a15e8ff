"""Verification of files: every kind of evidence, findings, and the classification.

Files are read only through ``labelers.formats`` handlers (one parser per
container); C2PA through ``labelers.provenance``; watermarks through
``labelers.watermark``. The ledger is reached through a
:class:`~detectors.lookup.LabelLookup`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from detectors.classify import classify
from detectors.kinds import VerifyJob, conformance_stage, evidence_stage
from detectors.lookup import LabelLookup
from detectors.origin import pinned_keyring, producer_for
from detectors.report import (
    C2PA,
    RECORD,
    CarriedRecord,
    Evidence,
    Finding,
    Report,
)
from detectors.traces import (
    XMP_TRACE_PROPERTIES,
    generator_named_in,
    generator_signing_as,
    generator_traces,
    iptc_evidence,
    is_ai_source_type,
    source_type,
)
from labelers.errors import AigcError
from labelers.formats import Capability, Metadata, sniff_handler
from labelers.formats.parse_once import shares_walks
from labelers.formats.xmp import digital_source_type, simple_properties
from labelers.integrity import INVALID, PLATFORM, PRODUCER, UNVERIFIABLE, VALID, Check, Keyring
from labelers.integrity import verify as check_signature
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.provenance import read_manifest, supported_media_types
from labelers.record import Record, provider_code_problems

C2PA_CARRIER = "c2pa:cn.tc260.aigc"


@dataclass(frozen=True)
class VerifyContext:
    """What a verifying service holds for every file it checks."""

    #: the ledger: a decoded watermark or ProduceID back to the full record
    lookup: LabelLookup
    #: PEM CA certificates a C2PA signer must chain to, to be trusted
    trust_anchors_pem: str | None = None
    #: the public keys record signatures (ReservedCode1/2) are checked with
    keyring: Keyring | None = None
    limits: Limits = DEFAULT_LIMITS


@shares_walks
def verify_file(
    data: bytes,
    context: VerifyContext,
    declared_ai: bool = False,
    check_visible: bool = False,
) -> Report:
    """Judge ``data``: every kind of evidence, findings, and the Art. 6 class.

    Images are read by OCR for a visible label when they carry no record (a
    caption alone makes them suspected) or when ``check_visible`` asks for it
    (a record without a visible label is then a finding).
    """
    lookup, limits, keyring = context.lookup, context.limits, context.keyring
    trust_anchors_pem = context.trust_anchors_pem
    handler, media_type = sniff_handler(data)
    report = Report(media_type=media_type)
    if Capability.RECORD not in handler.capabilities:
        # no metadata to read, check or judge (plain text): the content is all
        job = VerifyJob(report, data, media_type, handler, Metadata(media_type), lookup, limits)
        evidence_stage(handler.kind)(job)
        return classify(report, declared_ai)
    meta = handler.read(data, limits)
    job = VerifyJob(report, data, media_type, handler, meta, lookup, limits, check_visible)
    _records(report, meta)
    properties = meta.properties
    if meta.xmp:
        report.evidence.extend(iptc_evidence(digital_source_type(meta.xmp)))
        properties = {**simple_properties(meta.xmp, XMP_TRACE_PROPERTIES), **properties}
    report.evidence.extend(generator_traces(properties))
    _c2pa(report, data, media_type, trust_anchors_pem, limits)
    evidence_stage(handler.kind)(job)
    _conformance(job)
    _integrity(report, lambda: handler.content_digest(data, limits), keyring or Keyring())
    return classify(report, declared_ai)


def _integrity(report: Report, digest: Callable[[], bytes], keyring: Keyring) -> None:
    """ReservedCode1/2 of the file's record, checked against the content.

    A file with several different records gets each checked, and the one
    that counts is chosen here (see :func:`_choose_record`).
    """
    ring = keyring.merged(pinned_keyring())
    content: list[bytes] = []

    def content_digest() -> bytes:
        if not content:
            content.append(digest())
        return content[0]

    checks: dict[Record, dict[str, Check]] = {}
    for carried in report.records:
        if carried.record in checks or len(checks) >= _MAX_RECORDS_CHECKED:
            continue
        # a record recovered from the ledger came with re-encoded content: fields only
        in_file = carried.source == "metadata"
        checks[carried.record] = {
            role: check_signature(role, carried.record, content_digest() if in_file else None, ring)
            for role in (PRODUCER, PLATFORM)
        }
    _choose_record(report, checks)
    record = report.record
    if record is None:
        return
    for role in (PRODUCER, PLATFORM):
        check = checks[record][role]
        report.integrity[role] = check.to_dict()
        if check.status in INVALID:
            report.findings.append(
                Finding("integrity-invalid", f"{role} signature: {check.detail}")
            )
        elif check.status == UNVERIFIABLE:
            report.findings.append(Finding("integrity-unverifiable", check.detail, "info"))


# more distinct records than this in one file are not each signature-checked
_MAX_RECORDS_CHECKED = 4


def _choose_record(report: Report, checks: dict[Record, dict[str, Check]]) -> None:
    """Put the record that counts first, and say why when the file holds others.

    GB 45438 allows one record per file; a file with several (a stale legacy
    copy next to the current one, a platform's rewrite next to the
    producer's) is judged by one. In order: a record whose producer or
    platform signature verifies (its fields are authenticated); then the one in
    the format's own carrier (format readers list that first, legacy carriers
    after); then the first found. The copy inside a C2PA manifest counts only
    when the file has no other: it describes the file as signed, and a
    disagreeing copy says the record was rewritten since.
    """
    in_file = [r for r in report.records if r.source == "metadata"]
    distinct = list(dict.fromkeys(r.record for r in in_file))
    if len(distinct) < 2:
        return
    carried = [r for r in in_file if r.carrier != C2PA_CARRIER] or in_file
    candidates = list(dict.fromkeys(r.record for r in carried))
    signed = [r for r in candidates if any(c.status == VALID for c in checks.get(r, {}).values())]
    winner = signed[0] if signed else candidates[0]
    carrier = next(c.carrier for c in in_file if c.record == winner)
    if len(candidates) == 1:
        why = (
            "it is the file's record; the C2PA manifest's copy differs, so the record "
            "changed after the manifest was signed"
        )
    elif signed:
        why = "its signature verifies" + (
            "" if len(signed) == 1 else " (several do: the first in the format's own carrier)"
        )
    else:
        why = "it sits in the format's own record carrier, read first; no record's signature "
        why += "verifies"
    report.records.sort(key=lambda r: r.source != "metadata" or r.record != winner)
    others = ", ".join(c.carrier for c in in_file if c.record != winner)
    report.findings.append(
        Finding(
            "records-disagree",
            f"{len(distinct)} different records: the one in {carrier} counts because {why}; "
            f"disagreeing: {others}",
            "warning",
        )
    )


def _records(report: Report, meta: Metadata) -> None:
    for found in meta.records:
        if found.record is None:
            report.findings.append(
                Finding(
                    "unreadable-record",
                    f"{found.carrier} holds text that is not an AIGC record: {found.error}",
                )
            )
            continue
        report.records.append(CarriedRecord(found.carrier, found.record))
        report.evidence.append(record_evidence(found.carrier, found.record))


def record_evidence(carrier: str, record: Record) -> Evidence:
    """A record as evidence, its producer (and platform) resolved through the directory."""
    data: dict[str, Any] = {"record": record.as_dict()}
    summary = f'GB 45438 record, Label "{record.label}", producer {record.content_producer}'
    producer = producer_for(record.content_producer)
    if producer is not None:
        who, how = producer
        data.update(
            generator=who.generator, company=who.company, product=who.product, producer_match=how
        )
        summary += f" ({who.generator})"
    platform = producer_for(record.content_propagator)
    if platform is not None and record.content_propagator != record.content_producer:
        data["propagator"] = {"company": platform[0].company, "product": platform[0].product}
    return Evidence(RECORD, carrier, summary, data)


def _c2pa(
    report: Report, data: bytes, media_type: str, anchors: str | None, limits: Limits
) -> None:
    if media_type not in supported_media_types():
        return
    try:
        manifest = read_manifest(data, media_type, anchors, limits=limits)
    except AigcError as exc:
        report.findings.append(Finding("c2pa-unreadable", exc.detail, "warning"))
        return
    if manifest is None:
        return
    report.c2pa = manifest.summary()
    report.integrity["c2pa"] = {
        "state": manifest.state,
        "validation": manifest.validation,
        "content_altered": manifest.content_altered,
        "signer_trusted": manifest.signer_trusted,
        "manifest_intact": manifest.manifest_intact,
    }
    ai_found = False
    for summary in manifest.manifests:
        for action in summary["actions"]:
            if is_ai_source_type(action["digital_source_type"]):
                report.evidence.append(_c2pa_ai_evidence(summary, action, manifest.validation))
                ai_found = True
                break  # one item per manifest: its first AI action says it
    if not ai_found:
        report.evidence.append(
            Evidence(
                C2PA,
                "c2pa",
                f"C2PA manifest ({_validation_phrase(manifest.validation)}), signed by "
                f"{manifest.signer or 'an unnamed signer'}; no AI source type in "
                f"{len(manifest.manifests)} manifest(s)",
                {
                    "manifest": report.c2pa["active"],
                    "validation": manifest.validation,
                    "claim_generator": manifest.claim_generator,
                    "ai": False,
                },
            )
        )
    _c2pa_findings(report, manifest)
    if manifest.gb_record:
        try:
            record = Record.from_mapping(manifest.gb_record)
        except AigcError:
            return
        report.records.append(CarriedRecord(C2PA_CARRIER, record))


_VALIDATION_PHRASES = {
    "trusted": "valid, trusted signer",
    "valid-untrusted": "valid, signer not in the trust list",
    "content-altered": "content altered after signing",
    "certificate-expired": "signer certificate expired",
    "certificate-invalid": "signer certificate invalid",
    "invalid": "invalid",
}


def _validation_phrase(word: str) -> str:
    return _VALIDATION_PHRASES.get(word, word)


def _c2pa_ai_evidence(
    summary: dict[str, Any], action: dict[str, Any], active_validation: str
) -> Evidence:
    """One manifest's AI claim: who said it, with what action, and whether to believe it.

    An ingredient's claim reaches this file only through the active manifest:
    when that one no longer matches the file, the claim is history, not proof.
    """
    signer = summary["signer"]
    by_signer = generator_signing_as(signer["common_name"], signer["issuer"])
    by_name = generator_named_in(action["software_agent"]) or generator_named_in(
        summary["claim_generator"]
    )
    gen = by_signer or by_name
    # a signer's organisation proves the maker only through a trusted chain;
    # untrusted, expired or self-made certificates still name it with intact
    # content (what real exports read as without a trust list); after the
    # bytes changed or the claim broke, the name is a loose hint
    broken = ("content-altered", "invalid")
    sound = summary["validation"] not in broken and active_validation not in broken
    if by_signer and summary["validation"] == "trusted":
        confidence = "high"
    elif gen and sound:
        confidence = "medium"
    else:
        confidence = "low"
    where = (
        "the active manifest"
        if summary["active"]
        else f"an ingredient {summary['depth']} level(s) down"
    )
    who = " / ".join(dict.fromkeys(n for n in (signer["common_name"], signer["issuer"]) if n))
    source = source_type(action["digital_source_type"])
    text = (
        f"C2PA {action['action']} with {source.code if source else action['digital_source_type']} "
        f"in {where}, signed by {who or 'an unnamed signer'} "
        f"({_validation_phrase(summary['validation'])})"
    )
    data: dict[str, Any] = {
        "manifest": summary["label"],
        "depth": summary["depth"],
        "action": action["action"],
        "digital_source_type": action["digital_source_type"],
        "software_agent": action["software_agent"],
        "claim_generator": summary["claim_generator"],
        "signer": signer,
        "validation": summary["validation"],
        "ai": True,
    }
    if gen is not None:
        data.update(generator=gen.name, origin_confidence=confidence)
        text += f"; generator {gen.name}"
    return Evidence(C2PA, f"c2pa:{summary['label']}", text, data)


def _c2pa_findings(report: Report, manifest: Any) -> None:
    codes = ", ".join(e.get("code", "?") for e in manifest.validation_errors[:5])
    codes = f" ({codes})" if codes else ""
    word = manifest.validation
    if word == "content-altered":
        report.findings.append(
            Finding(
                "c2pa-content-altered",
                "the C2PA manifest does not validate: content altered after signing" + codes,
            )
        )
    elif word == "invalid":
        report.findings.append(
            Finding("c2pa-invalid", "the C2PA manifest does not validate" + codes)
        )
    elif word in ("certificate-expired", "certificate-invalid"):
        report.findings.append(
            Finding(
                "c2pa-certificate",
                "the C2PA content binding holds but the signer's certificate is "
                + ("expired" if word == "certificate-expired" else "invalid")
                + codes,
                "warning",
            )
        )
    elif word == "valid-untrusted":
        report.findings.append(
            Finding(
                "c2pa-untrusted",
                f"the C2PA manifest is valid but its signer ({manifest.signer}) is not in "
                "the trust list",
                "info",
            )
        )
    for summary in manifest.manifests[1:]:
        if summary["validation"] in ("content-altered", "invalid"):
            report.findings.append(
                Finding(
                    "c2pa-invalid",
                    f"ingredient manifest {summary['label']} (depth {summary['depth']}): "
                    f"{_validation_phrase(summary['validation'])} "
                    f"({', '.join(summary['validation_codes'][:5])})",
                    "warning",
                )
            )
    if manifest.truncated:
        report.findings.append(
            Finding(
                "c2pa-chain-truncated",
                f"the manifest chain was read to {len(manifest.manifests)} manifests; "
                "the rest is beyond this verifier's depth and count limits",
                "warning",
            )
        )


def _conformance(job: VerifyJob) -> None:
    report = job.report
    distinct = {r.record for r in report.records if r.source == "metadata"}
    if len(distinct) > 1:
        where = ", ".join(r.carrier for r in report.records if r.source == "metadata")
        report.findings.append(
            Finding(
                "several-records",
                f"the file carries {len(distinct)} different records ({where}); "
                "GB 45438 allows one record per file",
            )
        )
    carriers = [r.carrier for r in report.records if r.source == "metadata"]
    for carrier in {c for c in carriers if carriers.count(c) > 1}:
        report.findings.append(
            Finding("several-records", f"{carrier} appears {carriers.count(carrier)} times")
        )
    seen: set[Record] = set()
    for carried in report.records:
        record = carried.record
        if record in seen:
            continue
        seen.add(record)
        for problem in record.problems():
            report.findings.append(Finding("invalid-record", f"{carried.carrier}: {problem}"))
        for note in record.parse_notes:
            report.findings.append(Finding("record-form", f"{carried.carrier}: {note}", "warning"))
        if record.content_producer and not (record.content_propagator or record.propagate_id):
            report.findings.append(
                Finding(
                    "propagator-empty",
                    f"{carried.carrier}: ContentPropagator and PropagateID are empty; Annex E "
                    "asks a producer's first write to repeat ContentProducer and ProduceID there",
                    "info",
                )
            )
        code_problems = provider_code_problems(record.content_producer)
        if code_problems and record.content_producer:
            report.findings.append(
                Finding(
                    "producer-code",
                    f"ContentProducer {record.content_producer!r} is not a TC260-PG-20252A "
                    "provider code",
                    "info",
                )
            )
    conformance_stage(job.handler.kind)(job)
