"""detectors.carried: the IDs a file already carries (what batch resume asks)."""

from __future__ import annotations

from detectors.carried import carried_ids, propagated_by
from labelers.formats.markdown import HANDLER as MARKDOWN
from labelers.limits import DEFAULT_LIMITS
from labelers.pipeline import label_text
from labelers.record import Record

PRODUCER = "0011911100007109120X0010001"
PLATFORM = "0011911100007109120X0020001"
RECORD = Record.first_write(PRODUCER, "01JCARRIEDXXXXXXXXXXXXXXX1")
DOC = b"# Notes\n\n- one\n- two\n\nThe tide turns at noon.\n"


def test_a_record_gives_its_ids_and_a_file_without_one_none() -> None:
    labelled = MARKDOWN.write_record(DOC, RECORD)
    assert carried_ids(labelled, DEFAULT_LIMITS) == [RECORD.produce_id]
    assert carried_ids(labelled, DEFAULT_LIMITS, "propagate_id") == [RECORD.propagate_id]
    assert carried_ids(DOC, DEFAULT_LIMITS) == []
    assert carried_ids(b"\x00\x01 not a file", DEFAULT_LIMITS) == []


def test_plain_text_gives_the_produce_id_its_watermark_carries() -> None:
    text = label_text("The tide turns at noon; the boats come in.", RECORD, "none")
    assert carried_ids(text.encode(), DEFAULT_LIMITS) == [RECORD.produce_id]
    assert carried_ids(text.encode(), DEFAULT_LIMITS, "propagate_id") == []


def test_propagated_by_names_only_the_platforms_own_propagate_id() -> None:
    propagated = RECORD.with_fields(content_propagator=PLATFORM, propagate_id="P-9")
    data = MARKDOWN.write_record(DOC, propagated)
    assert propagated_by(data, PLATFORM, DEFAULT_LIMITS) == "P-9"
    assert propagated_by(data, "0011911100007109120X0020002", DEFAULT_LIMITS) is None
    assert propagated_by(data, None, DEFAULT_LIMITS) is None
