"""The Art. 6 classification, rule by rule, on reports built by hand.

``verify_file`` assembles the evidence; these tests hold the rules that turn
evidence into confirmed / possible / suspected / none, and their precedence,
without any file format in the way (the format paths are tested end to end in
test_wild_corpus.py, test_record_shapes.py and the API tests).
"""

from __future__ import annotations

import pytest

from detectors.classify import LABEL_FOR_CLASS, classify
from detectors.report import (
    C2PA,
    EXPLICIT,
    IPTC,
    RECORD,
    TRACE,
    WATERMARK,
    CarriedRecord,
    Evidence,
    Report,
)
from labelers.record import Record
from tests.support import PLATFORM, PRODUCER

PRODUCED = Record.first_write(PRODUCER, "01JABCDEFGHJKMNPQRSTVWXYZ0")


def report(*evidence: Evidence, records: tuple[CarriedRecord, ...] = ()) -> Report:
    return Report("image/png", records=list(records), evidence=list(evidence))


def signal(kind: str, ai: bool = True) -> Evidence:
    return Evidence(kind, f"test:{kind}", f"a {kind}", {"ai": ai})


def platform_record(label: str) -> Record:
    """A record a platform created for content no producer labelled (Label 2 or 3)."""
    return Record(label, PLATFORM, "P-1", "", PLATFORM, "P-1", "")


def test_a_record_in_metadata_is_confirmed_whatever_else_is_there():
    done = classify(
        report(signal(TRACE), signal(EXPLICIT), records=(CarriedRecord("xmp", PRODUCED),)),
        declared_ai=True,
    )
    assert done.classification == "confirmed"
    assert done.rule.startswith("Art. 6(1)") and "metadata record" in done.rule


def test_a_record_recovered_through_the_watermark_is_confirmed_and_says_so():
    done = classify(report(records=(CarriedRecord("watermark", PRODUCED, source="ledger"),)))
    assert done.classification == "confirmed"
    assert "watermark matched in ledger" in done.rule


def test_the_metadata_record_wins_over_one_recovered_from_the_ledger():
    recovered = CarriedRecord("watermark", platform_record("3"), source="ledger")
    done = classify(report(records=(recovered, CarriedRecord("xmp", PRODUCED))))
    assert done.classification == "confirmed"  # the metadata record, Label 1


@pytest.mark.parametrize(("label", "expected"), [("2", "possible"), ("3", "suspected")])
def test_a_platforms_weaker_label_keeps_its_class(label, expected):
    done = classify(report(records=(CarriedRecord("xmp", platform_record(label)),)))
    assert done.classification == expected
    assert f'Label "{label}"' in done.rule and "platform" in done.rule


def test_a_declaration_without_a_record_is_possible_and_beats_traces():
    done = classify(report(signal(TRACE), signal(C2PA)), declared_ai=True)
    assert done.classification == "possible" and done.rule.startswith("Art. 6(2)")


@pytest.mark.parametrize("kind", [EXPLICIT, WATERMARK, C2PA, IPTC, TRACE])
def test_each_kind_of_ai_signal_alone_makes_it_suspected(kind):
    done = classify(report(signal(kind)))
    assert done.classification == "suspected"
    assert done.rule.startswith("Art. 6(3)") and kind in done.rule


def test_signals_that_say_not_ai_and_other_evidence_do_not_make_it_suspected():
    # a C2PA manifest of a camera capture, a trace of a non-AI editor, a record
    # that failed to parse: evidence, but none of it says AI
    done = classify(report(signal(C2PA, ai=False), signal(TRACE, ai=False), signal(RECORD)))
    assert done.classification == "none"


def test_nothing_at_all_is_none():
    assert classify(report()).classification == "none"


def test_the_suspected_rule_names_each_kind_once_in_the_order_found():
    done = classify(report(signal(TRACE), signal(EXPLICIT), signal(TRACE)))
    assert done.rule.endswith("detected: generator-trace, explicit-label")


def test_the_label_a_platform_writes_follows_the_class():
    assert LABEL_FOR_CLASS == {"confirmed": "1", "possible": "2", "suspected": "3"}
    for cls, label in LABEL_FOR_CLASS.items():
        if cls != "confirmed":
            written = classify(report(records=(CarriedRecord("xmp", platform_record(label)),)))
            assert written.classification == cls  # what it writes reads back as the same class
