"""The Annex E record: every form met in the wild parses; writing is strict."""

from __future__ import annotations

import html
import json

import pytest

from labelers.errors import InvalidRecord
from labelers.record import (
    KEYS,
    Record,
    decode_ulid,
    encode_ulid,
    new_produce_id,
    provider_code_problems,
    provider_role,
)

PRODUCER = "0011911100007109120X0010001"


def _record() -> Record:
    return Record.first_write(PRODUCER, "01JABCDEFGHJKMNPQRSTVWXYZ0")


def test_first_write_mirrors_producer_into_propagator_fields() -> None:
    r = _record()
    assert (r.content_propagator, r.propagate_id) == (r.content_producer, r.produce_id)
    assert r.reserved_code1 == r.reserved_code2 == ""


def test_dump_is_compact_wrapped_json_in_standard_key_order() -> None:
    text = _record().dumps()
    assert " " not in text and text.startswith('{"AIGC":{"Label":"1","ContentProducer"')
    assert list(json.loads(text)["AIGC"]) == list(KEYS)
    assert list(json.loads(_record().dumps(wrapped=False))) == list(KEYS)


@pytest.mark.parametrize(
    "form",
    [
        lambda r: r.dumps(),
        lambda r: r.dumps(wrapped=False),
        lambda r: html.escape(r.dumps()),
        lambda r: html.escape(html.escape(r.dumps(wrapped=False))),
        lambda r: json.dumps({"AIGC": dict(reversed(r.as_dict().items()))}, indent=2),
        lambda r: "\n  " + r.dumps() + "\x00\x00",
        lambda r: "ASCII\x00\x00\x00" + r.dumps(),  # EXIF UserComment prefix
        lambda r: json.dumps({"AIGC": r.dumps(wrapped=False)}),  # double-encoded
        lambda r: r.dumps().replace('"Label"', '"label"'),
    ],
)
def test_every_wild_form_parses_to_the_same_record(form) -> None:
    r = _record()
    assert Record.parse(form(r)) == r


def test_lenient_read_notes_non_string_values_and_unknown_keys() -> None:
    r = Record.parse('{"AIGC":{"Label":1,"ContentProducer":"X","ProduceID":"Y","Extra":"z"}}')
    assert r.label == "1"
    notes = " ".join(r.parse_notes)
    assert "Label must be a string" in notes and "unknown key 'Extra'" in notes
    assert "ReservedCode1 is missing" in notes


@pytest.mark.parametrize("text", ["", "not json", "[1,2]", '{"foo":"bar"}', '{"AIGC": 5}'])
def test_unrecoverable_input_raises_invalid_record(text: str) -> None:
    with pytest.raises(InvalidRecord):
        Record.parse(text)


def test_validation_names_each_violation() -> None:
    bad = Record("4", "生成服务", "has space", reserved_code2="back\\slash")
    with pytest.raises(InvalidRecord) as exc:
        bad.validate()
    detail = exc.value.detail
    assert 'Label must be "1", "2" or "3"' in detail
    assert "ContentProducer must use printable ASCII" in detail
    assert "ProduceID must use printable ASCII" in detail and "U+0020" in detail
    assert "ReservedCode2" in detail


def test_double_quote_is_allowed_and_escaped() -> None:
    r = Record("1", 'a"b', "id")
    assert r.problems() == []
    assert '"ContentProducer":"a\\"b"' in r.dumps()


def test_provider_code_structure() -> None:
    assert provider_code_problems(PRODUCER) == []
    assert provider_role(PRODUCER) == "generation"
    assert provider_role(PRODUCER[:22] + "20001") == "distribution"
    assert provider_code_problems("0011")[0].startswith("provider code '0011' must be 27")
    assert "start with '00'" in provider_code_problems("1" + PRODUCER[1:])[0]
    assert "service extension" in provider_code_problems(PRODUCER[:22] + "30001")[0]
    assert provider_code_problems(PRODUCER.lower())


def test_minted_produce_ids_are_unique_sortable_and_charset_valid() -> None:
    ids = [new_produce_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 26 and Record("1", "P", i).problems() == [] for i in ids)
    stamps = [decode_ulid(i) >> 80 for i in ids]
    assert stamps == sorted(stamps)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0" * 25,
        "0" * 27,
        "8" + "0" * 25,  # over 128 bits
        "0" * 25 + "I",  # I, L, O, U are not Crockford characters
        "0" * 25 + "U",
        "01jd8z5k3m7q2r4t6v8w0xyzab",  # lower case
        "0" * 25 + "\u0661",  # a digit, but not an ASCII one
        "0" * 25 + "!",
    ],
)
def test_decode_ulid_refuses_what_is_not_a_ulid(text: str) -> None:
    assert decode_ulid(text) is None


def test_decode_ulid_reads_every_value_encode_ulid_writes() -> None:
    import random

    values = [0, 1, 2**128 - 1] + [random.getrandbits(128) for _ in range(2000)]
    assert [decode_ulid(encode_ulid(v)) for v in values] == values
    assert decode_ulid("7" + "Z" * 25) == 2**128 - 1
