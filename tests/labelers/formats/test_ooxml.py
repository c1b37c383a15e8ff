"""OOXML (DOCX/PPTX/XLSX): the AIGC custom property and visible labels.

Fixtures are minimal but valid packages built here with zipfile (core/app
properties, mc:Ignorable namespaces, a stored PNG), so "untouched entries stay
byte-identical" and "LibreOffice still opens it" mean something. Independent
readers: zipfile/ElementTree for the package, exiftool for the property,
LibreOffice + pdftotext for what a reader sees.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import struct
import subprocess
import time
import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from labelers.errors import CorruptInput, InvalidOption, LimitExceeded, UnsupportedMedia
from labelers.formats import get_handler, sniff
from labelers.formats.ooxml import DOCX, HANDLER, PPTX, XLSX
from labelers.limits import Limits
from labelers.record import Record
from labelers.visible.office import add_visible_label, hf_with_label
from labelers.visible.wording import find_wording
from tests.support import PLATFORM, PRODUCER, raises_limit

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
A = "http://schemas.openxmlformats.org/drawingml/2006/main"
P = "http://schemas.openxmlformats.org/presentationml/2006/main"
S = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
DECL = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'


def png_bytes() -> bytes:
    """A small photographic-like PNG: gradient plus texture."""
    y, x = np.mgrid[0:64, 0:96]
    rng = np.random.default_rng(7)
    base = np.stack([x * 2.5, y * 3.5, (x + y) * 1.5], axis=-1)
    img = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(img).save(out, "PNG")
    return out.getvalue()


def _core(title: str) -> str:
    return (
        DECL + '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/'
        'metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:dcterms="http://purl.org/dc/terms/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<dc:title>{title}</dc:title><dc:creator>Test Author</dc:creator>"
        '<dcterms:created xsi:type="dcterms:W3CDTF">2025-09-01T08:00:00Z</dcterms:created>'
        "</cp:coreProperties>"
    )


def _app(application: str) -> str:
    return (
        DECL + '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/'
        'extended-properties" xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/'
        f'docPropsVTypes"><Application>{application}</Application>'
        "<AppVersion>16.0000</AppVersion></Properties>"
    )


CUSTOM_OTHER = (
    DECL + '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/'
    'custom-properties" xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/'
    'docPropsVTypes">'
    '<property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="2" name="Department">'
    "<vt:lpwstr>Research &amp; Development</vt:lpwstr></property>"
    '<property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="5" name="Reviewed">'
    "<vt:bool>true</vt:bool></property>"
    "</Properties>"
)


def _package(entries: list[tuple[str, bytes | str]], compress_png: bool = False) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            kind = zipfile.ZIP_STORED if name.endswith(".png") and not compress_png else None
            info = zipfile.ZipInfo(name, (2025, 9, 1, 8, 0, 0))
            info.compress_type = kind if kind is not None else zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return out.getvalue()


def _content_types(overrides: dict[str, str], custom: bool) -> str:
    body = "".join(f'<Override PartName="/{k}" ContentType="{v}"/>' for k, v in overrides.items())
    if custom:
        body += (
            '<Override PartName="/docProps/custom.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.custom-properties+xml"/>'
        )
    return (
        DECL + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        '<Default Extension="png" ContentType="image/png"/>'
        '<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-'
        'package.core-properties+xml"/><Override PartName="/docProps/app.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.extended-properties+xml"/>'
        + body
        + "</Types>"
    )


def _root_rels(main: str, custom: bool) -> str:
    extra = (
        f'<Relationship Id="rId4" Type="{R}/custom-properties" Target="docProps/custom.xml"/>'
        if custom
        else ""
    )
    return (
        DECL + f'<Relationships xmlns="{PKG_REL}">'
        f'<Relationship Id="rId1" Type="{R}/officeDocument" Target="{main}"/>'
        f'<Relationship Id="rId2" Type="{PKG_REL}/metadata/core-properties" '
        'Target="docProps/core.xml"/>'
        f'<Relationship Id="rId3" Type="{R}/extended-properties" Target="docProps/app.xml"/>'
        + extra
        + "</Relationships>"
    )


def docx(
    paragraphs: list[str] | None = None,
    *,
    custom: bool = False,
    footer: str | None = None,
    sections: int = 1,
) -> bytes:
    """A Word document; ``footer`` adds an existing default footer with that text."""
    paragraphs = paragraphs or ["第一段：这是一份测试文档。", "Second paragraph with an image."]
    pg = (
        '<w:pgSz w:w="11906" w:h="16838"/><w:pgMar w:top="1440" w:right="1440" '
        'w:bottom="1440" w:left="1440" w:header="720" w:footer="720" w:gutter="0"/>'
    )
    foot_ref = '<w:footerReference w:type="default" r:id="rId9"/>' if footer else ""
    body = ""
    per = max(1, len(paragraphs) // sections)
    for i, text in enumerate(paragraphs):
        sect = ""
        if (i + 1) % per == 0 and (i + 1) // per < sections:  # a section ends here
            sect = f"<w:pPr><w:sectPr>{pg}</w:sectPr></w:pPr>"
        body += (
            f'<w:p w14:paraId="1000000{i}">{sect}<w:r><w:t xml:space="preserve">{text}</w:t>'
            "</w:r></w:p>"
        )
    body += (
        '<w:p><w:r><w:drawing><wp:inline><wp:extent cx="914400" cy="609600"/>'
        '<wp:docPr id="1" name="Picture 1"/><a:graphic><a:graphicData '
        'uri="http://schemas.openxmlformats.org/drawingml/2006/picture"><pic:pic>'
        '<pic:nvPicPr><pic:cNvPr id="0" name="image1.png"/><pic:cNvPicPr/></pic:nvPicPr>'
        '<pic:blipFill><a:blip r:embed="rId8"/><a:stretch><a:fillRect/></a:stretch>'
        '</pic:blipFill><pic:spPr><a:xfrm><a:off x="0" y="0"/><a:ext cx="914400" '
        'cy="609600"/></a:xfrm><a:prstGeom prst="rect"><a:avLst/></a:prstGeom></pic:spPr>'
        "</pic:pic></a:graphicData></a:graphic></wp:inline></w:drawing></w:r></w:p>"
    )
    document = (
        DECL + f'<w:document xmlns:wpc="http://schemas.microsoft.com/office/word/2010/'
        f'wordprocessingCanvas" xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/'
        f'2006" xmlns:r="{R}" xmlns:w="{W}" xmlns:w14="http://schemas.microsoft.com/office/word/'
        f'2010/wordml" xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/'
        f'wordprocessingDrawing" xmlns:a="{A}" xmlns:pic="http://schemas.openxmlformats.org/'
        f'drawingml/2006/picture" mc:Ignorable="w14"><w:body>{body}'
        f"<w:sectPr>{foot_ref}{pg}</w:sectPr></w:body></w:document>"
    )
    rels = (
        DECL + f'<Relationships xmlns="{PKG_REL}">'
        f'<Relationship Id="rId1" Type="{R}/styles" Target="styles.xml"/>'
        f'<Relationship Id="rId8" Type="{R}/image" Target="media/image1.png"/>'
        + (f'<Relationship Id="rId9" Type="{R}/footer" Target="footer1.xml"/>' if footer else "")
        + "</Relationships>"
    )
    styles = (
        DECL + f'<w:styles xmlns:w="{W}"><w:docDefaults><w:rPrDefault><w:rPr>'
        '<w:sz w:val="22"/></w:rPr></w:rPrDefault></w:docDefaults></w:styles>'
    )
    overrides = {
        "word/document.xml": "application/vnd.openxmlformats-officedocument."
        "wordprocessingml.document.main+xml",
        "word/styles.xml": "application/vnd.openxmlformats-officedocument."
        "wordprocessingml.styles+xml",
    }
    entries: list[tuple[str, bytes | str]] = []
    if footer:
        overrides["word/footer1.xml"] = (
            "application/vnd.openxmlformats-officedocument.wordprocessingml.footer+xml"
        )
    entries = [
        ("[Content_Types].xml", _content_types(overrides, custom)),
        ("_rels/.rels", _root_rels("word/document.xml", custom)),
        ("docProps/core.xml", _core("测试文档")),
        ("docProps/app.xml", _app("Microsoft Office Word")),
        ("word/document.xml", document),
        ("word/_rels/document.xml.rels", rels),
        ("word/styles.xml", styles),
        ("word/media/image1.png", png_bytes()),
    ]
    if footer:
        entries.append(
            (
                "word/footer1.xml",
                DECL + f'<w:ftr xmlns:w="{W}" xmlns:r="{R}"><w:p><w:r><w:t>{footer}</w:t>'
                "</w:r></w:p></w:ftr>",
            )
        )
    if custom:
        entries.append(("docProps/custom.xml", CUSTOM_OTHER))
    return _package(entries)


def pptx(slides: list[str] | None = None, *, custom: bool = False) -> bytes:
    """A 16:9 presentation with one title text box per slide."""
    slides = slides or ["第一张幻灯片", "Second slide"]
    overrides = {
        "ppt/presentation.xml": "application/vnd.openxmlformats-officedocument."
        "presentationml.presentation.main+xml",
        "ppt/slideMasters/slideMaster1.xml": "application/vnd.openxmlformats-officedocument."
        "presentationml.slideMaster+xml",
        "ppt/slideLayouts/slideLayout1.xml": "application/vnd.openxmlformats-officedocument."
        "presentationml.slideLayout+xml",
        "ppt/theme/theme1.xml": "application/vnd.openxmlformats-officedocument.theme+xml",
    }
    ns = f'xmlns:a="{A}" xmlns:r="{R}" xmlns:p="{P}"'
    empty_tree = (
        '<p:cSld><p:spTree><p:nvGrpSpPr><p:cNvPr id="1" name=""/><p:cNvGrpSpPr/><p:nvPr/>'
        "</p:nvGrpSpPr><p:grpSpPr/></p:spTree></p:cSld>"
    )
    entries: list[tuple[str, bytes | str]] = []
    sld_ids = ""
    pres_rels = (
        f'<Relationship Id="rId1" Type="{R}/slideMaster" '
        'Target="slideMasters/slideMaster1.xml"/>'
        f'<Relationship Id="rId2" Type="{R}/theme" Target="theme/theme1.xml"/>'
    )
    for i, text in enumerate(slides, start=1):
        overrides[f"ppt/slides/slide{i}.xml"] = (
            "application/vnd.openxmlformats-officedocument.presentationml.slide+xml"
        )
        sld_ids += f'<p:sldId id="{255 + i}" r:id="rId{10 + i}"/>'
        pres_rels += (
            f'<Relationship Id="rId{10 + i}" Type="{R}/slide" Target="slides/slide{i}.xml"/>'
        )
        slide = (
            DECL + f"<p:sld {ns}><p:cSld><p:spTree><p:nvGrpSpPr>"
            '<p:cNvPr id="1" name=""/><p:cNvGrpSpPr/><p:nvPr/></p:nvGrpSpPr><p:grpSpPr/>'
            '<p:sp><p:nvSpPr><p:cNvPr id="2" name="Title 1"/><p:cNvSpPr txBox="1"/><p:nvPr/>'
            '</p:nvSpPr><p:spPr><a:xfrm><a:off x="838200" y="365125"/><a:ext cx="10515600" '
            'cy="1325563"/></a:xfrm><a:prstGeom prst="rect"><a:avLst/></a:prstGeom></p:spPr>'
            '<p:txBody><a:bodyPr/><a:lstStyle/><a:p><a:r><a:rPr lang="zh-CN" sz="4000"/>'
            f"<a:t>{text}</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld>"
            "<p:clrMapOvr><a:masterClrMapping/></p:clrMapOvr></p:sld>"
        )
        entries.append((f"ppt/slides/slide{i}.xml", slide))
        entries.append(
            (
                f"ppt/slides/_rels/slide{i}.xml.rels",
                DECL + f'<Relationships xmlns="{PKG_REL}"><Relationship Id="rId1" '
                f'Type="{R}/slideLayout" Target="../slideLayouts/slideLayout1.xml"/>'
                "</Relationships>",
            )
        )
    presentation = (
        DECL + f'<p:presentation {ns} saveSubsetFonts="1"><p:sldMasterIdLst>'
        '<p:sldMasterId id="2147483648" r:id="rId1"/></p:sldMasterIdLst>'
        f'<p:sldIdLst>{sld_ids}</p:sldIdLst><p:sldSz cx="12192000" cy="6858000"/>'
        '<p:notesSz cx="6858000" cy="9144000"/></p:presentation>'
    )
    master = (
        DECL + f"<p:sldMaster {ns}>{empty_tree}"
        '<p:clrMap bg1="lt1" tx1="dk1" bg2="lt2" tx2="dk2" accent1="accent1" '
        'accent2="accent2" accent3="accent3" accent4="accent4" accent5="accent5" '
        'accent6="accent6" hlink="hlink" folHlink="folHlink"/>'
        '<p:sldLayoutIdLst><p:sldLayoutId id="2147483649" r:id="rId1"/></p:sldLayoutIdLst>'
        "</p:sldMaster>"
    )
    layout = (
        DECL + f'<p:sldLayout {ns} type="blank">{empty_tree}'
        "<p:clrMapOvr><a:masterClrMapping/></p:clrMapOvr></p:sldLayout>"
    )
    scheme = "".join(
        f'<a:{n}><a:srgbClr val="{v}"/></a:{n}>'
        for n, v in [
            ("dk1", "000000"),
            ("lt1", "FFFFFF"),
            ("dk2", "1F497D"),
            ("lt2", "EEECE1"),
            ("accent1", "4F81BD"),
            ("accent2", "C0504D"),
            ("accent3", "9BBB59"),
            ("accent4", "8064A2"),
            ("accent5", "4BACC6"),
            ("accent6", "F79646"),
            ("hlink", "0000FF"),
            ("folHlink", "800080"),
        ]
    )
    font = '<a:latin typeface="Calibri"/><a:ea typeface=""/><a:cs typeface=""/>'
    fill = '<a:solidFill><a:schemeClr val="phClr"/></a:solidFill>'
    line = '<a:ln w="9525"><a:solidFill><a:schemeClr val="phClr"/></a:solidFill></a:ln>'
    theme = (
        DECL + f'<a:theme xmlns:a="{A}" name="Office"><a:themeElements>'
        f'<a:clrScheme name="Office">{scheme}</a:clrScheme>'
        f'<a:fontScheme name="Office"><a:majorFont>{font}</a:majorFont>'
        f"<a:minorFont>{font}</a:minorFont></a:fontScheme>"
        f'<a:fmtScheme name="Office"><a:fillStyleLst>{fill * 3}</a:fillStyleLst>'
        f"<a:lnStyleLst>{line * 3}</a:lnStyleLst><a:effectStyleLst>"
        + "<a:effectStyle><a:effectLst/></a:effectStyle>"
        * 3
        + f"</a:effectStyleLst><a:bgFillStyleLst>{fill * 3}</a:bgFillStyleLst></a:fmtScheme>"
        "</a:themeElements></a:theme>"
    )
    entries = [
        ("[Content_Types].xml", _content_types(overrides, custom)),
        ("_rels/.rels", _root_rels("ppt/presentation.xml", custom)),
        ("docProps/core.xml", _core("测试演示")),
        ("docProps/app.xml", _app("Microsoft Office PowerPoint")),
        ("ppt/presentation.xml", presentation),
        (
            "ppt/_rels/presentation.xml.rels",
            DECL + f'<Relationships xmlns="{PKG_REL}">' + pres_rels + "</Relationships>",
        ),
        ("ppt/slideMasters/slideMaster1.xml", master),
        (
            "ppt/slideMasters/_rels/slideMaster1.xml.rels",
            DECL
            + f'<Relationships xmlns="{PKG_REL}"><Relationship Id="rId1" Type="{R}/slideLayout" '
            'Target="../slideLayouts/slideLayout1.xml"/><Relationship Id="rId2" '
            f'Type="{R}/theme" Target="../theme/theme1.xml"/></Relationships>',
        ),
        ("ppt/slideLayouts/slideLayout1.xml", layout),
        (
            "ppt/slideLayouts/_rels/slideLayout1.xml.rels",
            DECL
            + f'<Relationships xmlns="{PKG_REL}"><Relationship Id="rId1" Type="{R}/slideMaster" '
            'Target="../slideMasters/slideMaster1.xml"/></Relationships>',
        ),
        ("ppt/theme/theme1.xml", theme),
        *entries,
        ("ppt/media/image1.png", png_bytes()),
    ]
    if custom:
        entries.append(("docProps/custom.xml", CUSTOM_OTHER))
    return _package(entries)


def xlsx(
    cells: list[list[str]] | None = None,
    *,
    custom: bool = False,
    sheets: int = 1,
    header_footer: str = "",
) -> bytes:
    """A workbook: shared-string cells, optional existing headerFooter XML."""
    cells = cells or [["名称", "数值"], ["样本", "42"]]
    strings: list[str] = []
    overrides = {
        "xl/workbook.xml": "application/vnd.openxmlformats-officedocument."
        "spreadsheetml.sheet.main+xml",
        "xl/styles.xml": "application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml",
        "xl/sharedStrings.xml": "application/vnd.openxmlformats-officedocument."
        "spreadsheetml.sharedStrings+xml",
    }
    rows = ""
    for r, row in enumerate(cells, start=1):
        cols = ""
        for c, value in enumerate(row):
            ref = f"{chr(65 + c)}{r}"
            if value.isdigit():
                cols += f'<c r="{ref}"><v>{value}</v></c>'
            else:
                strings.append(value)
                cols += f'<c r="{ref}" t="s"><v>{len(strings) - 1}</v></c>'
        rows += f'<row r="{r}">{cols}</row>'
    last = f"{chr(64 + max(len(r) for r in cells))}{len(cells)}"
    sheet_xml = (
        DECL + f'<worksheet xmlns="{S}" xmlns:r="{R}" '
        'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
        'xmlns:x14ac="http://schemas.microsoft.com/office/spreadsheetml/2009/9/ac" '
        f'mc:Ignorable="x14ac"><dimension ref="A1:{last}"/><sheetViews><sheetView '
        'workbookViewId="0"/></sheetViews>'
        '<sheetFormatPr defaultRowHeight="15" x14ac:dyDescent="0.25"/>'
        f"<sheetData>{rows}</sheetData>"
        '<pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" footer="0.3"/>'
        f"{header_footer}</worksheet>"
    )
    sheet_entries: list[tuple[str, bytes | str]] = []
    sheet_list = ""
    wb_rels = (
        f'<Relationship Id="rId100" Type="{R}/styles" Target="styles.xml"/>'
        f'<Relationship Id="rId101" Type="{R}/sharedStrings" Target="sharedStrings.xml"/>'
    )
    for i in range(1, sheets + 1):
        overrides[f"xl/worksheets/sheet{i}.xml"] = (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
        )
        sheet_entries.append((f"xl/worksheets/sheet{i}.xml", sheet_xml))
        sheet_list += f'<sheet name="Sheet{i}" sheetId="{i}" r:id="rId{i}"/>'
        wb_rels += (
            f'<Relationship Id="rId{i}" Type="{R}/worksheet" Target="worksheets/sheet{i}.xml"/>'
        )
    workbook = (
        DECL + f'<workbook xmlns="{S}" xmlns:r="{R}"><bookViews><workbookView/></bookViews>'
        f"<sheets>{sheet_list}</sheets></workbook>"
    )
    sst = "".join(f"<si><t>{s}</t></si>" for s in strings)
    styles = (
        DECL + f'<styleSheet xmlns="{S}"><fonts count="1"><font><sz val="11"/>'
        '<name val="Calibri"/></font></fonts><fills count="1"><fill><patternFill '
        'patternType="none"/></fill></fills><borders count="1"><border/></borders>'
        '<cellStyleXfs count="1"><xf/></cellStyleXfs><cellXfs count="1"><xf xfId="0"/>'
        "</cellXfs></styleSheet>"
    )
    entries: list[tuple[str, bytes | str]] = [
        ("[Content_Types].xml", _content_types(overrides, custom)),
        ("_rels/.rels", _root_rels("xl/workbook.xml", custom)),
        ("docProps/core.xml", _core("测试表格")),
        ("docProps/app.xml", _app("Microsoft Excel")),
        ("xl/workbook.xml", workbook),
        (
            "xl/_rels/workbook.xml.rels",
            DECL + f'<Relationships xmlns="{PKG_REL}">' + wb_rels + "</Relationships>",
        ),
        ("xl/styles.xml", styles),
        (
            "xl/sharedStrings.xml",
            DECL + f'<sst xmlns="{S}" count="{len(strings)}" '
            f'uniqueCount="{len(strings)}">{sst}</sst>',
        ),
        *sheet_entries,
    ]
    if custom:
        entries.append(("docProps/custom.xml", CUSTOM_OTHER))
    return _package(entries)


# ----------------------------------------------------------------- helpers
CUSTOM_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/custom-properties}"
VT_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes}"
RECORD = Record.first_write(PRODUCER, "01JAAAAAAAAAAAAAAAAAAAAAAA")
RECORD2 = RECORD.with_fields(content_propagator=PLATFORM, propagate_id="PLATFORM-ID-2")
BUILDERS = {
    DOCX: lambda **kw: docx(**kw),
    PPTX: lambda **kw: pptx(**kw),
    XLSX: lambda **kw: xlsx(**kw),
}
KINDS = pytest.mark.parametrize("kind", [DOCX, PPTX, XLSX], ids=["docx", "pptx", "xlsx"])


def entries(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        return {i.filename: zf.read(i) for i in zf.infolist()}


def raw_entry(data: bytes, name: str) -> bytes:
    """Local header + compressed bytes of ``name`` exactly as stored."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo(name)
    start = info.header_offset
    n, m = struct.unpack("<HH", data[start + 26 : start + 30])
    head = data[start : start + 30]
    return head[4:26] + data[start + 30 : start + 30 + n + m + info.compress_size]


def custom_props(data: bytes) -> list[tuple[str, str, str]]:
    root = ET.fromstring(entries(data)["docProps/custom.xml"])
    return [
        (p.get("name"), p.get("pid"), "".join(p.itertext()))
        for p in root.iter(f"{CUSTOM_NS}property")
    ]


def with_custom_xml(data: bytes, custom_xml: str) -> bytes:
    """``data`` with docProps/custom.xml replaced (package otherwise the same)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename == "docProps/custom.xml":
                body = custom_xml.encode()
            dst.writestr(info, body)
    return out.getvalue()


def plain(text: str) -> str:
    return re.sub(r"\s+", "", text)


# -------------------------------------------------------------- the record
@KINDS
def test_record_round_trips_and_is_sniffed_and_read_by_exiftool(kind, tmp_path):
    data = BUILDERS[kind]()
    assert sniff(data) == kind
    assert get_handler(kind) is HANDLER
    out = HANDLER.write_record(data, RECORD)
    meta = HANDLER.read(out)
    assert meta.media_type == kind
    assert [(f.carrier, f.record) for f in meta.records] == [("ooxml:custom:AIGC", RECORD)]
    # the documented write form: the bare seven-field object in a vt:lpwstr
    root = ET.fromstring(entries(out)["docProps/custom.xml"])
    (value,) = [p.find(f"{VT_NS}lpwstr").text for p in root if p.get("name") == "AIGC"]
    assert json.loads(value) == RECORD.as_dict()
    if shutil.which("exiftool"):
        path = tmp_path / ("f." + {DOCX: "docx", PPTX: "pptx", XLSX: "xlsx"}[kind])
        path.write_bytes(out)
        shown = subprocess.run(
            ["exiftool", "-j", "-AIGC", str(path)], capture_output=True, text=True, check=True
        )
        assert json.loads(json.loads(shown.stdout)[0]["AIGC"]) == RECORD.as_dict()


@KINDS
def test_new_custom_part_gets_content_type_and_package_relationship(kind):
    out = HANDLER.write_record(BUILDERS[kind](), RECORD)
    parts = entries(out)
    names = list(parts)
    assert names[0] == "[Content_Types].xml"
    types = ET.fromstring(parts["[Content_Types].xml"])
    overrides = {o.get("PartName"): o.get("ContentType") for o in types if "Override" in o.tag}
    assert overrides["/docProps/custom.xml"] == (
        "application/vnd.openxmlformats-officedocument.custom-properties+xml"
    )
    rels = ET.fromstring(parts["_rels/.rels"])
    custom = [r for r in rels if r.get("Type").endswith("/custom-properties")]
    assert [r.get("Target") for r in custom] == ["docProps/custom.xml"]
    assert len({r.get("Id") for r in rels}) == len(rels)


@KINDS
def test_other_custom_properties_and_their_pids_are_kept(kind):
    out = HANDLER.write_record(BUILDERS[kind](custom=True), RECORD)
    props = custom_props(out)
    assert props[:2] == [("Department", "2", "Research & Development"), ("Reviewed", "5", "true")]
    assert [(n, pid) for n, pid, _ in props[2:]] == [("AIGC", "6")]
    meta = HANDLER.read(out)
    assert meta.properties["ooxml:custom:Department"] == "Research & Development"


@KINDS
def test_relabelling_replaces_the_one_record(kind):
    once = HANDLER.write_record(BUILDERS[kind](custom=True), RECORD)
    twice = HANDLER.write_record(once, RECORD2)
    assert [n for n, _, _ in custom_props(twice)] == ["Department", "Reviewed", "AIGC"]
    assert [f.record for f in HANDLER.read(twice).records] == [RECORD2]
    assert HANDLER.write_record(twice, RECORD2) == twice  # idempotent, byte for byte


@KINDS
def test_every_other_entry_is_copied_byte_for_byte(kind):
    data = BUILDERS[kind](custom=True)
    out = HANDLER.write_record(data, RECORD)
    before, after = entries(data), entries(out)
    assert list(after) == list(before)  # same entries, same order
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"docProps/custom.xml"}
    for name in before:
        if name not in changed:
            assert raw_entry(out, name) == raw_entry(data, name), name


def test_reads_wrapped_lowercase_and_broken_values():
    wrapped = RECORD.dumps(wrapped=True).replace('"', "&quot;")
    custom = (
        '<?xml version="1.0"?><Properties xmlns="http://schemas.openxmlformats.org/'
        'officeDocument/2006/custom-properties" xmlns:vt="http://schemas.openxmlformats.org/'
        'officeDocument/2006/docPropsVTypes">'
        f'<property fmtid="{{D5CDD505-2E9C-101B-9397-08002B2CF9AE}}" pid="2" name="aigc">'
        f"<vt:lpwstr>{wrapped}</vt:lpwstr></property>"
        '<property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="3" name="AIGC">'
        "<vt:lpwstr>not json</vt:lpwstr></property></Properties>"
    )
    data = with_custom_xml(docx(custom=True), custom)
    found = HANDLER.read(data).records
    assert found[0].record == RECORD
    assert found[1].record is None and "not a JSON" in found[1].error
    out = HANDLER.write_record(data, RECORD2)  # both go, one comes back
    assert [f.record for f in HANDLER.read(out).records] == [RECORD2]


def test_reads_core_and_app_properties_and_text():
    meta = HANDLER.read(docx(footer="第 1 页"))
    assert meta.properties["ooxml:core:title"] == "测试文档"
    assert meta.properties["ooxml:core:creator"] == "Test Author"
    assert meta.properties["ooxml:app:Application"] == "Microsoft Office Word"
    assert meta.text_pages[0].startswith("第一段：这是一份测试文档。\nSecond paragraph")
    assert meta.text_pages[1] == "第 1 页"
    assert HANDLER.read(pptx(["一", "二", "三"])).text_pages == ["一", "二", "三"]
    assert HANDLER.read(xlsx()).text_pages[0] == "名称\n数值\n样本"


def test_invalid_record_is_refused_before_writing():
    from labelers.errors import InvalidRecord

    with pytest.raises(InvalidRecord):
        HANDLER.write_record(docx(), Record("7", "生成服务", "id with space"))


def test_dangling_custom_relationship_is_replaced():
    data = docx()
    parts = entries(data)
    rels = (
        parts["_rels/.rels"]
        .decode()
        .replace(
            "</Relationships>",
            '<Relationship Id="rId9" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
            'relationships/custom-properties" Target="../../etc/custom.xml"/></Relationships>',
        )
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, body in parts.items():
            zf.writestr(name, rels if name == "_rels/.rels" else body)
    labelled = HANDLER.write_record(out.getvalue(), RECORD)
    root = ET.fromstring(entries(labelled)["_rels/.rels"])
    targets = [r.get("Target") for r in root if r.get("Type").endswith("/custom-properties")]
    assert targets == ["docProps/custom.xml"]
    assert HANDLER.read(labelled).records[0].record == RECORD


# ---------------------------------------------------------------- security
def test_zip_bomb_is_refused_before_inflating():
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, body in entries(docx()).items():
            zf.writestr(name, body)
        zf.writestr("word/bomb.xml", b"\0" * (64 * 1024 * 1024))
    data = bomb.getvalue()
    assert len(data) < 200_000
    started = time.perf_counter()
    with pytest.raises(LimitExceeded, match="ZIP bomb"):
        HANDLER.read(data)
    with raises_limit("max_unzipped_bytes"):
        HANDLER.write_record(
            data, RECORD, limits=Limits(max_zip_ratio=10_000, max_unzipped_bytes=10_000_000)
        )
    # no inflation happened: both refusals are instant compared with inflating 64 MB twice
    assert time.perf_counter() - started < 5


def test_declared_sizes_that_lie_are_caught_while_streaming():
    data = docx()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo("word/document.xml")
    # shrink document.xml's uncompressed size in the central directory only
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:
        name_len = struct.unpack("<H", data[pos + 28 : pos + 30])[0]
        if data[pos + 46 : pos + 46 + name_len] == b"word/document.xml":
            break
        pos = data.find(b"PK\x01\x02", pos + 4)
    assert pos > 0 and info.file_size > 100
    lying = data[: pos + 24] + struct.pack("<L", 100) + data[pos + 28 :]
    with pytest.raises(CorruptInput):
        HANDLER.read(lying)


def test_too_many_entries_is_a_limit():
    with raises_limit("max_zip_entries"):
        HANDLER.read(xlsx(), limits=Limits(max_zip_entries=5))


@pytest.mark.parametrize("part", ["docProps/custom.xml", "word/document.xml"])
def test_entity_expansion_and_doctype_are_corrupt_input(part):
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
        '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/'
        'custom-properties">&lol3;</Properties>'
    )
    parts = entries(docx(custom=True))
    parts[part] = laughs.encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, body in parts.items():
            zf.writestr(name, body)
    with pytest.raises(CorruptInput, match=r"DTD|entities"):
        HANDLER.read(out.getvalue())
    # each writer parses only the parts it edits, and refuses them the same way
    with pytest.raises(CorruptInput, match=r"DTD|entities"):
        if part == "docProps/custom.xml":
            HANDLER.write_record(out.getvalue(), RECORD)
        else:
            add_visible_label(out.getvalue(), DOCX, "AI生成")


def test_bad_zips_and_non_ooxml_archives():
    with pytest.raises(CorruptInput, match="ZIP"):
        HANDLER.read(b"PK\x03\x04" + b"\x00" * 200)
    with pytest.raises(CorruptInput):
        HANDLER.read(docx()[:-40])  # truncated central directory
    plain_zip = io.BytesIO()
    with zipfile.ZipFile(plain_zip, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(UnsupportedMedia, match="Content_Types"):
        HANDLER.read(plain_zip.getvalue())


def test_path_traversal_entry_names_are_refused():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, body in entries(docx()).items():
            zf.writestr(name, body)
        zf.writestr("../../evil.xml", "<x/>")
    with pytest.raises(CorruptInput, match="outside the package"):
        HANDLER.write_record(out.getvalue(), RECORD)


def test_duplicate_entry_names_are_refused():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf, pytest.warns(UserWarning):
        for name, body in entries(docx(custom=True)).items():
            zf.writestr(name, body)
        zf.writestr("docProps/custom.xml", "<x/>")
    with pytest.raises(CorruptInput, match="two entries"):
        HANDLER.read(out.getvalue())


# ---------------------------------------------------------- visible labels
def footer_texts(data: bytes) -> list[str]:
    return HANDLER.read(data).text_pages[1:]


def test_docx_without_footer_gets_one_referenced_from_the_section():
    data = docx()
    out = add_visible_label(data, DOCX, "人工智能生成")
    parts = entries(out)
    doc = parts["word/document.xml"].decode()
    assert re.search(r'<w:footerReference w:type="default" r:id="rId\d+"/><w:pgSz', doc)
    assert 'mc:Ignorable="w14"' in doc and "xmlns:w14=" in doc  # Word needs these kept
    assert footer_texts(out) == ["人工智能生成"]
    types = parts["[Content_Types].xml"].decode()
    assert "wordprocessingml.footer+xml" in types
    for name in ("word/styles.xml", "word/media/image1.png", "docProps/core.xml"):
        assert raw_entry(out, name) == raw_entry(data, name)


def test_docx_existing_footer_keeps_its_text_and_relabel_does_not_duplicate():
    out = add_visible_label(docx(footer="第 1 页"), DOCX, "人工智能生成")
    assert footer_texts(out) == ["第 1 页\n人工智能生成"]
    again = add_visible_label(out, DOCX, "AI生成")
    assert footer_texts(again) == ["第 1 页\nAI生成"]
    assert add_visible_label(again, DOCX, "AI生成") == again
    assert "footerReference" not in entries(again)["word/document.xml"].decode().replace(
        'w:footerReference w:type="default" r:id="rId9"', ""
    )


def test_docx_header_placement_and_record_survive_together():
    labelled = HANDLER.write_record(docx(), RECORD)
    out = add_visible_label(labelled, DOCX, "AI生成", placement="header")
    assert "headerReference" in entries(out)["word/document.xml"].decode()
    meta = HANDLER.read(out)
    assert meta.records[0].record == RECORD
    assert find_wording("\n".join(meta.text_pages)) == ["AI生成"]


def test_pptx_text_box_bottom_right_on_first_or_every_slide():
    data = pptx(["一", "二", "三"])
    first = add_visible_label(data, PPTX, "人工智能生成")
    assert HANDLER.read(first).text_pages == ["一\n人工智能生成", "二", "三"]
    every = add_visible_label(first, PPTX, "人工智能生成", slides="all")
    assert HANDLER.read(every).text_pages == [f"{n}\n人工智能生成" for n in "一二三"]
    assert add_visible_label(every, PPTX, "人工智能生成", slides="all") == every
    slide = ET.fromstring(entries(every)["ppt/slides/slide2.xml"])
    a = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
    shapes = [s for s in slide.iter() if s.tag.endswith("}sp")]
    label = [s for s in shapes if "人工智能生成" in "".join(s.itertext())]
    assert len(label) == 1
    off, ext = label[0].find(f".//{a}off"), label[0].find(f".//{a}ext")
    x, y, cx, cy = (int(v) for v in (off.get("x"), off.get("y"), ext.get("cx"), ext.get("cy")))
    assert x > 12192000 / 2 and y > 6858000 / 2  # bottom-right quadrant
    assert x + cx <= 12192000 and y + cy <= 6858000  # on the slide
    size = int(label[0].find(f".//{a}rPr").get("sz"))
    assert size >= 1400  # legible: 14 pt or more on a 7.5-inch slide
    ids = [e.get("id") for e in slide.iter() if e.tag.endswith("}cNvPr")]
    assert len(ids) == len(set(ids))


def test_xlsx_footer_on_every_sheet_keeps_existing_sections():
    existing = (
        "<headerFooter><oddHeader>&amp;L公司&amp;R第 &amp;P 页</oddHeader>"
        "<oddFooter>&amp;LConfidential</oddFooter></headerFooter>"
    )
    out = add_visible_label(xlsx(sheets=2, header_footer=existing), XLSX, "人工智能生成")
    parts = entries(out)
    for n in (1, 2):
        root = ET.fromstring(parts[f"xl/worksheets/sheet{n}.xml"])
        s = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
        hf = root.find(f"{s}headerFooter")
        assert hf.find(f"{s}oddHeader").text == "&L公司&R第 &P 页"
        assert hf.find(f"{s}oddFooter").text == "&LConfidential&C人工智能生成"
        assert root.find(f"{s}drawing") is not None  # the on-screen text box
    again = add_visible_label(out, XLSX, "AI生成")
    root = ET.fromstring(entries(again)["xl/worksheets/sheet1.xml"])
    assert "".join(root.itertext()).count("生成") == 1
    drawings = [v for k, v in entries(again).items() if k.startswith("xl/drawings/drawing")]
    assert len(drawings) == 2 and all(d.decode().count(">AI生成</a:t>") == 1 for d in drawings)
    assert "人工智能" not in "".join(d.decode() for d in drawings)


def test_xlsx_without_header_footer_gets_one_in_schema_order():
    out = add_visible_label(xlsx(), XLSX, "AI生成")
    sheet = entries(out)["xl/worksheets/sheet1.xml"].decode()
    order = [sheet.find(t) for t in ("<pageMargins", "<headerFooter", "<drawing")]
    assert -1 not in order and order == sorted(order)


def test_header_footer_string_editing():
    assert hf_with_label("", "AI生成") == "&CAI生成"
    assert hf_with_label("&LLeft&CPage &P", "AI生成") == "&LLeft&CPage &P\nAI生成"
    assert hf_with_label("&CPage &P\nAI生成&RR", "人工智能生成") == "&CPage &P\n人工智能生成&RR"
    assert hf_with_label("Centred", "AI & 生成") == "Centred\nAI && 生成"
    with pytest.raises(InvalidOption, match="255"):
        hf_with_label("&L" + "x" * 250, "AI生成")


def test_visible_label_options_are_checked():
    with pytest.raises(InvalidOption):
        add_visible_label(docx(), DOCX, "AI生成", placement="middle")
    with pytest.raises(InvalidOption):
        add_visible_label(pptx(), PPTX, "AI生成", slides="some")
    with pytest.raises(UnsupportedMedia):
        add_visible_label(docx(), "application/pdf", "AI生成")
    from labelers.errors import InvalidWording

    with pytest.raises(InvalidWording):
        add_visible_label(docx(), DOCX, "机器写的")


# ----------------------------------------------------- what a reader sees
SOFFICE = shutil.which("soffice")
needs_soffice = pytest.mark.skipif(SOFFICE is None, reason="LibreOffice (soffice) not installed")


@pytest.fixture(scope="module")
def soffice_profile(tmp_path_factory) -> str:
    """One LibreOffice user profile per module: creating it is most of a first start."""
    return tmp_path_factory.mktemp("soffice-profile").as_uri()


def soffice_convert(paths: list[Path], fmt: str, outdir: Path, profile: str) -> None:
    subprocess.run(
        [
            SOFFICE,
            f"-env:UserInstallation={profile}",
            "--headless",
            "--convert-to",
            fmt,
            "--outdir",
            str(outdir),
            *map(str, paths),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )


@pytest.fixture(scope="module")
def converted(tmp_path_factory, soffice_profile) -> dict[str, Path]:
    """Labelled files converted to PDF by LibreOffice, in one soffice run."""
    folder = tmp_path_factory.mktemp("soffice")
    files = {
        "docx": add_visible_label(
            HANDLER.write_record(docx([f"段落 {i}" for i in range(6)], sections=2), RECORD),
            DOCX,
            "人工智能生成",
        ),
        "pptx": add_visible_label(pptx(["一", "二"]), PPTX, "人工智能生成", slides="all"),
        "xlsx": add_visible_label(xlsx(sheets=2), XLSX, "人工智能生成"),
    }
    paths = []
    for ext, data in files.items():
        path = folder / f"{ext}.{ext}"  # distinct stems: each gets its own PDF
        path.write_bytes(data)
        paths.append(path)
    soffice_convert(paths, "pdf", folder, soffice_profile)
    return {ext: folder / f"{ext}.pdf" for ext in files}


def pdf_pages(path: Path) -> list[str]:
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    return [plain(page) for page in text.split("\f") if page.strip()]


@needs_soffice
def test_libreoffice_shows_docx_label_on_every_page_of_every_section(converted):
    pages = pdf_pages(converted["docx"])
    assert len(pages) == 2  # two sections, each a page
    assert all("人工智能生成" in p for p in pages)


@needs_soffice
def test_libreoffice_shows_pptx_label_bottom_right_on_every_slide(converted, tmp_path):
    pages = pdf_pages(converted["pptx"])
    assert len(pages) == 2 and all("人工智能生成" in p for p in pages)
    subprocess.run(
        [
            "pdftoppm",
            "-r",
            "40",
            "-png",
            "-f",
            "1",
            "-l",
            "1",
            str(converted["pptx"]),
            str(tmp_path / "slide"),
        ],
        check=True,
    )
    png = next(tmp_path.glob("slide*.png"))
    ink = np.asarray(Image.open(png).convert("L")) < 128
    h, w = ink.shape
    assert ink[int(h * 0.85) :, int(w * 0.75) :].sum() > 20  # the label's glyphs
    assert ink[int(h * 0.3) : int(h * 0.85), :].sum() == 0  # nothing else was drawn


@needs_soffice
def test_libreoffice_shows_xlsx_label_on_every_sheet(converted):
    pages = pdf_pages(converted["xlsx"])
    assert len(pages) == 2
    assert all(p.count("人工智能生成") == 2 for p in pages)  # print footer + text box


@needs_soffice
def test_packages_written_by_libreoffice_are_labelled_and_still_render(tmp_path, soffice_profile):
    # LibreOffice writes [Content_Types].xml last, adds settings/fontTable parts
    # and an empty custom.xml: a second real-world producer next to our fixtures.
    src = tmp_path / "src"
    src.mkdir()
    originals = {"docx": docx(custom=True, footer="页脚 1"), "pptx": pptx(), "xlsx": xlsx()}
    for ext, data in originals.items():
        (src / f"{ext}.{ext}").write_bytes(data)
    resaved = tmp_path / "resaved"
    resaved.mkdir()
    for ext in originals:  # one output format per soffice call
        soffice_convert([src / f"{ext}.{ext}"], ext, resaved, soffice_profile)
    labelled = []
    for ext, kind in (("docx", DOCX), ("pptx", PPTX), ("xlsx", XLSX)):
        data = (resaved / f"{ext}.{ext}").read_bytes()
        assert HANDLER.read(data).properties["ooxml:app:Application"].startswith("LibreOffice")
        out = HANDLER.write_record(add_visible_label(data, kind, "AI生成", slides="all"), RECORD)
        assert [f.record for f in HANDLER.read(out).records] == [RECORD]
        path = tmp_path / f"labelled-{ext}.{ext}"
        path.write_bytes(out)
        labelled.append(path)
    soffice_convert(labelled, "pdf", tmp_path, soffice_profile)
    for path in labelled:
        pages = pdf_pages(path.with_suffix(".pdf"))
        assert pages and all("AI生成" in p for p in pages), path.name
