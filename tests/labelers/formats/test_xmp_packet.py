"""The XMP packet side of the record: every form is read, exactly one is written,
other properties survive, and hostile XML is refused."""

from __future__ import annotations

import html

import pytest

from labelers.errors import CorruptInput
from labelers.formats import xmp

NS = 'xmlns:TC260="http://www.tc260.org.cn/ns/AIGC/1.0/"'
RDF = 'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'


def packet(description_attrs: str = "", body: str = "", extra_ns: str = "") -> str:
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF {RDF}>\n'
        f'  <rdf:Description rdf:about="" {NS} {extra_ns} {description_attrs}>\n'
        f"   {body}\n"
        "  </rdf:Description>\n"
        '</rdf:RDF></x:xmpmeta>\n<?xpacket end="w"?>'
    )


def test_new_packet_holds_the_bare_record_and_the_iptc_source_type(
    record, tmp_path, exiftool, tc260_count
):
    text = xmp.set_record(None, record)
    assert text.startswith('<?xpacket begin="\ufeff"') and text.endswith('<?xpacket end="w"?>')
    info = exiftool(text.encode("utf-8"), ".xmp")
    assert info["XMP-TC260:AIGC"] == record.dumps(wrapped=False)
    assert info["XMP-iptcExt:DigitalSourceType"] == xmp.DIGITAL_SOURCE_TYPE_AI
    assert tc260_count(text.encode()) == 1
    # simple readers cut the JSON out of the element: keep the quotes literal
    assert f"<TC260:AIGC>{record.dumps(wrapped=False)}</TC260:AIGC>" in text
    assert xmp.digital_source_type(text) == xmp.DIGITAL_SOURCE_TYPE_AI


@pytest.mark.parametrize(
    "form",
    ["element", "element-escaped-twice", "element-wrapped", "attribute", "attribute-wrapped"],
)
def test_every_form_of_the_record_is_read(form, record):
    bare, wrapped = record.dumps(wrapped=False), record.dumps(wrapped=True)
    if form == "element":
        text = packet(body=f"<TC260:AIGC>{html.escape(bare, quote=False)}</TC260:AIGC>")
    elif form == "element-escaped-twice":
        text = packet(body=f"<TC260:AIGC>{html.escape(html.escape(bare))}</TC260:AIGC>")
    elif form == "element-wrapped":
        text = packet(body=f"<TC260:AIGC>{html.escape(wrapped)}</TC260:AIGC>")
    elif form == "attribute":
        text = packet(description_attrs=f'TC260:AIGC="{html.escape(bare)}"')
    else:
        text = packet(description_attrs=f'TC260:AIGC="{html.escape(wrapped)}"')
    found = xmp.read_records(text.encode("utf-8"))
    assert [(f.carrier, f.record, f.error) for f in found] == [("xmp:TC260:AIGC", record, None)]


def test_every_record_in_a_packet_is_reported_and_a_bad_one_says_why(record, other_record):
    text = packet(
        description_attrs=f'TC260:AIGC="{html.escape(record.dumps())}"',
        body="<TC260:AIGC>not json</TC260:AIGC>"
        f"<TC260:AIGC>{html.escape(other_record.dumps(wrapped=False))}</TC260:AIGC>",
    )
    found = xmp.read_records(text)
    assert [f.record for f in found] == [record, None, other_record]
    assert found[1].raw == "not json" and found[1].error


@pytest.mark.parametrize("form", ["element", "attribute"])
def test_setting_replaces_an_existing_record_and_keeps_everything_else(
    form, record, other_record, exiftool, tc260_count
):
    old = html.escape(other_record.dumps(wrapped=True))
    dc = 'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:xmp="http://ns.adobe.com/xap/1.0/"'
    keep = (
        "<dc:creator><rdf:Seq><rdf:li>Studio A</rdf:li></rdf:Seq></dc:creator>"
        "<TC260:Note>kept</TC260:Note><xmp:Rating>4</xmp:Rating>"
    )
    if form == "element":
        text = packet(body=f"<TC260:AIGC>{old}</TC260:AIGC>{keep}", extra_ns=dc)
    else:
        text = packet(description_attrs=f'TC260:AIGC="{old}"', body=keep, extra_ns=dc)
    out = xmp.set_record(text, record)
    assert [f.record for f in xmp.read_records(out)] == [record]
    assert tc260_count(out.encode()) == 1
    info = exiftool(out.encode(), ".xmp")
    assert info["XMP-dc:Creator"] == ["Studio A"]
    assert info["XMP-xmp:Rating"] == 4
    assert info["XMP-TC260:Note"] == "kept"
    # updated in place: still a single rdf:Description
    assert out.count("<rdf:Description") == 1


def test_a_packet_without_tc260_gets_its_own_description_with_the_same_about(record):
    text = (
        f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF {RDF}>'
        '<rdf:Description rdf:about="uuid:1" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        'xmp:CreatorTool="X"/></rdf:RDF></x:xmpmeta>'
    )
    out = xmp.set_record(text, record)
    assert out.count('rdf:about="uuid:1"') == 2
    assert 'xmp:CreatorTool="X"' in out
    assert [f.record for f in xmp.read_records(out)] == [record]


def test_a_more_specific_ai_source_type_is_kept_and_a_camera_one_replaced(record):
    composite = (
        "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
    )
    iptc = 'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"'
    text = packet(description_attrs=f'Iptc4xmpExt:DigitalSourceType="{composite}"', extra_ns=iptc)
    assert xmp.digital_source_type(xmp.set_record(text, record)) == composite
    camera = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"
    text = packet(
        body=f"<Iptc4xmpExt:DigitalSourceType>{camera}</Iptc4xmpExt:DigitalSourceType>",
        extra_ns=iptc,
    )
    out = xmp.set_record(text, record)
    assert xmp.digital_source_type(out) == xmp.DIGITAL_SOURCE_TYPE_AI
    assert out.count("DigitalSourceType>") == 2  # one element: open and close tag


def test_padding_is_whitespace_inside_the_wrapper(record):
    out = xmp.set_record(None, record, padding=4000)
    _, _, tail = out.partition("</x:xmpmeta>")
    assert len(tail) >= 4000 and tail.strip() == '<?xpacket end="w"?>'
    assert len(xmp.set_record(None, record, padding=0)) < len(out) - 3900


@pytest.mark.parametrize(
    "hostile",
    [
        '<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
        f"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF {RDF}>&b;</rdf:RDF></x:xmpmeta>",
        '<!DOCTYPE x SYSTEM "file:///etc/passwd"><x:xmpmeta xmlns:x="adobe:ns:meta/"/>',
        '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
    ],
)
def test_dtds_and_entities_are_refused(hostile, record):
    with pytest.raises(CorruptInput) as err:
        xmp.set_record(hostile, record)
    assert "DTD" in err.value.detail or "entit" in err.value.detail
    # reading never expands them either: it falls back to a plain text scan
    assert xmp.read_records(hostile) == []


def test_a_malformed_packet_is_refused_for_writing_but_still_read(record):
    broken = (
        f'<x:xmpmeta><rdf:RDF {RDF}><rdf:Description TC260:AIGC="{html.escape(record.dumps())}">'
    )
    with pytest.raises(CorruptInput):
        xmp.set_record(broken, record)
    assert [f.record for f in xmp.read_records(broken)] == [record]


def test_utf16_packets_and_empty_input(record):
    text = xmp.set_record(None, record)
    assert [f.record for f in xmp.read_records(text.encode("utf-16"))] == [record]
    assert xmp.read_records(b"") == []
    assert xmp.digital_source_type(b"") is None
