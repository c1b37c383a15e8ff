# ruff: noqa: E501  (the pinned table holds long notes verbatim)
"""Golden outputs: labelling, propagating and verifying a fixed set of files gives
the same bytes and the same report, byte for byte.

This guards refactors of the pipeline, the format handlers and the detectors:
any change of behaviour shows up as a changed digest. The inputs are built here
from fixed seeds, keys and IDs (no clocks, no random keys); C2PA signing is
left out because its manifests carry fresh UUIDs and times. When a change of
output is intended (or a dependency's encoder changes), run this module as a
script (``python -m tests.labelers.test_golden``) and paste the table it prints,
saying why in the commit.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import zipfile
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image, PngImagePlugin

from labelers.errors import AigcError
from labelers.integrity import RecordSigner
from labelers.record import Record
from tests.labelers.formats.conftest import OTHER_XMP, photo_array

PRODUCER = "0011911100007109120X0010001"
PLATFORM = "0011911100007109120X0020001"
WATERMARK_KEY = 0x0123456789ABCDEF
# a fixed Ed25519 key: its signatures are deterministic
SIGNER = RecordSigner(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))


def _exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = 1
    exif[0x0131] = "DiffusionTool 2.0"
    return exif


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(photo_array(320, 272)).save(
        buf, "JPEG", quality=90, exif=_exif(), xmp=OTHER_XMP
    )
    return buf.getvalue()


def _png() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a lighthouse at dusk, Steps: 30, Sampler: Euler a")
    info.add_itxt("XML:com.adobe.xmp", OTHER_XMP.decode("utf-8"))
    buf = io.BytesIO()
    Image.fromarray(photo_array(288, 256, seed=1)).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def _webp() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(photo_array(300, 260, seed=2)).save(
        buf, "WEBP", quality=85, exif=_exif(), xmp=OTHER_XMP
    )
    return buf.getvalue()


def _tiff() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(photo_array(300, 260, seed=3)).save(
        buf, "TIFF", compression="tiff_lzw", tiffinfo={305: "DiffusionTool 2.0", 700: OTHER_XMP}
    )
    return buf.getvalue()


def _gif() -> bytes:
    frames = [Image.fromarray(photo_array(seed=i)).quantize(64) for i in range(2)]
    buf = io.BytesIO()
    frames[0].save(
        buf, "GIF", save_all=True, append_images=frames[1:], loop=0, duration=120, comment=b"gen"
    )
    return buf.getvalue()


def _pdf() -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_creation_date(datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC))
    pdf.set_producer("GoldenGen 1.0")
    for page in range(2):
        pdf.add_page()
        pdf.set_font("helvetica", size=12)
        pdf.cell(text=f"A generated report, page {page + 1}.")
    return bytes(pdf.output())


def _docx() -> bytes:
    parts = {
        "[Content_Types].xml": '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://'
        'schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" '
        'ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default '
        'Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml"'
        ' ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.'
        'main+xml"/></Types>',
        "_rels/.rels": '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://'
        'schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type='
        '"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
        'Target="word/document.xml"/></Relationships>',
        "word/document.xml": '<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http:'
        '//schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>'
        "Generated text.</w:t></w:r></w:p><w:sectPr/></w:body></w:document>",
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in parts.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 2, 3, 4, 6))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, text)
    return buf.getvalue()


MARKDOWN = (
    b"---\ntitle: Harbour notes\ntags: [sea, light]\n---\n# Harbour notes\n\n"
    b"The lighthouse keeper walks the pier at dusk and counts the boats coming in.\n\n"
    b"- nets drying on the wall\n- gulls over the breakwater\n\n"
    b"See [the tide table](https://example.org/tides) before going out.\n"
)
HTML = (
    b"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Harbour</title>"
    b"<meta name='generator' content='SiteGen 2'></head><body><h1>Harbour</h1>"
    b"<p>The lighthouse keeper walks the pier at dusk and counts the boats coming in; "
    b"the nets dry on the wall and the gulls circle over the breakwater.</p></body></html>"
)
TEXT = (
    b"The lighthouse keeper walks the pier at dusk and counts the boats coming in. "
    b"Nets dry on the wall, gulls circle over the breakwater, and the tide turns.\n"
)

INPUTS: dict[str, Callable[[], bytes]] = {
    "jpeg": _jpeg,
    "png": _png,
    "webp": _webp,
    "tiff": _tiff,
    "gif": _gif,
    "pdf": _pdf,
    "docx": _docx,
    "markdown": lambda: MARKDOWN,
    "html": lambda: HTML,
    "text": lambda: TEXT,
}


class _Ledger:
    """Just enough ledger for verification: the one label these tests issue."""

    def __init__(self, record: Record) -> None:
        self.record = record

    def by_produce_id(self, produce_id: str) -> Record | None:
        return self.record if produce_id == self.record.produce_id else None

    def by_watermark_key(self, key: int) -> Record | None:
        return self.record if key == WATERMARK_KEY else None


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:24]


def _report_digest(report) -> str:
    return _sha(json.dumps(report.to_dict(), sort_keys=True, ensure_ascii=False).encode())


def outcomes(name: str) -> dict[str, str]:
    """What the service makes of input ``name``: digests of every output, and the labels' notes."""
    from detectors.files import VerifyContext, verify_file
    from labelers.pipeline import FileOptions, LabelContext, label_file
    from labelers.propagation import propagate_file

    data = INPUTS[name]()
    record = Record.first_write(PRODUCER, f"01JGOLDEN{name.upper():0<17}"[:26])
    full = label_file(
        data,
        record,
        FileOptions(),
        LabelContext(record_signer=SIGNER),
        watermark_payload=WATERMARK_KEY,
    )
    bare = label_file(
        data,
        record,
        FileOptions(explicit=False, watermark=False, c2pa=False),
        LabelContext(signer=None),
    )
    top = label_file(
        data,
        record,
        FileOptions(position="top-left" if full.media_type.startswith("image/") else "header"),
        watermark_payload=WATERMARK_KEY,
    )
    lookup = _Ledger(full.record)
    try:
        propagated = propagate_file(
            full.data, full.record, "1", PLATFORM, "PLATFORM-7", record_signer=SIGNER
        ).data
    except AigcError as exc:  # plain text has no record carrier
        propagated = f"{type(exc).__name__}: {exc.detail}".encode()
    return {
        "input": _sha(data),
        "full": _sha(full.data),
        "full.notes": f"{full.explicit}|{full.watermark}|{full.c2pa}|{full.watermark_key}",
        "bare": _sha(bare.data),
        "bare.notes": f"{bare.explicit}|{bare.watermark}|{bare.c2pa}",
        "top": _sha(top.data),
        "propagated": _sha(propagated),
        "verify.input": _report_digest(verify_file(data, VerifyContext(lookup))),
        "verify.full": _report_digest(
            verify_file(full.data, VerifyContext(lookup, keyring=_keyring()))
        ),
        "verify.bare": _report_digest(verify_file(bare.data, VerifyContext(lookup))),
        "verify.propagated": _report_digest(
            verify_file(propagated, VerifyContext(lookup, keyring=_keyring()))
        ),
    }


def _keyring():
    from labelers.integrity import Keyring

    ring = Keyring()
    ring.add(SIGNER.public_key, {PRODUCER, PLATFORM}, "golden")
    return ring


GOLDEN: dict[str, dict[str, str]] = {
    "docx": {
        "input": "dbb52b548bfe6588cd6f2e64",
        "full": "a9485bad09c6d2095843a190",
        "full.notes": "footer|not available for application/vnd.openxmlformats-officedocument.wordprocessingml.document|not available for application/vnd.openxmlformats-officedocument.wordprocessingml.document|None",
        "bare": "4a1be8b4d77cd0df647d0cc6",
        "bare.notes": "none|off|off",
        "top": "a7a98a9469b0a2ae049de320",
        "propagated": "bff26d15e32617df4d5bb71c",
        "verify.input": "ecb1b31b6bd19855ce0a8d8e",
        "verify.full": "1ce820ff4e74e21dd3f38ecd",
        "verify.bare": "9adfc72017d054dd9102b983",
        "verify.propagated": "5c174304b67f09ccc0351793",
    },
    "gif": {
        "input": "46d230fdcc2351f873369044",
        "full": "65fd2205c3d3ff64607fd471",
        "full.notes": "bottom-right|skipped: the image's shorter side is 120 px, below the watermark minimum of 256 px|no signer configured|None",
        "bare": "e465cc61c86feaffdeb4a572",
        "bare.notes": "none|off|off",
        "top": "bdf137ffb28d17ccb5b10cca",
        "propagated": "d98f49718760ced42153ebfe",
        "verify.input": "626125fa7706ac5332f54aea",
        "verify.full": "a09af06d28681944a5c29f26",
        "verify.bare": "97fbadca713e50ee2778f19c",
        "verify.propagated": "cf652158801ec3f6f9053355",
    },
    "html": {
        "input": "a6fc9ee749c31e044fd34197",
        "full": "e79761c41e174ad43095b94f",
        "full.notes": "footer|not available for text/html|not available for text/html|None",
        "bare": "f508558602cd77bf93b295d5",
        "bare.notes": "none|off|off",
        "top": "76f746daae6ee4551a9f8967",
        "propagated": "646b27de03d3e42691a98aec",
        "verify.input": "9c4d64dfdd96c75c7bb1844a",
        "verify.full": "a0bc25c1ccf2d1119f4a93bd",
        "verify.bare": "4ba82dd9f91056b4a38dc80f",
        "verify.propagated": "4a407d2779026374d17e63ce",
    },
    "jpeg": {
        "input": "6dced160926d41b5ad032b58",
        "full": "b362f67f68e8215672cbdc6a",
        "full.notes": "bottom-right|embedded|no signer configured|81985529216486895",
        "bare": "44392c311759b2a37e8b0a95",
        "bare.notes": "none|off|off",
        "top": "79a5de32e37a985206ad0fee",
        "propagated": "7a148d406d9cfe3ebdb7d555",
        "verify.input": "e20bb093792d984f35528e6a",
        "verify.full": "015ee846882815cdf475fc9f",
        "verify.bare": "152d72a2dd378100189603d7",
        "verify.propagated": "69c56a5a2a3404fc1fb0da5b",
    },
    "markdown": {
        "input": "6af49d8b1dde899e39114aee",
        "full": "40675a04ab607888d861315b",
        "full.notes": "footer|embedded|not available for text/markdown|None",
        "bare": "5e86b096b1c1876873b69829",
        "bare.notes": "none|off|off",
        "top": "488354b8081ac1e4eed79497",
        "propagated": "b07b8e2855b8dab1dde5a999",
        "verify.input": "c677db9833f91027d1edea28",
        "verify.full": "ad1c75b9f753bbeb6d74d924",
        "verify.bare": "38767d6671807f19bec472e9",
        "verify.propagated": "ac09ffc870f06f4bb8360fa9",
    },
    "pdf": {
        "input": "b743bc7cb5a1c21a66342dbf",
        "full": "4dcf8ba7957cd68955444ea6",
        "full.notes": "footer|not available for application/pdf|no signer configured|None",
        "bare": "fea55fa6cd7298f45d7c7f61",
        "bare.notes": "none|off|off",
        "top": "6b570c7cbdf03039e843cae7",
        "propagated": "21586194bcdd43caf922a444",
        "verify.input": "933123dd74eb43d9b16c3c2c",
        "verify.full": "c7a6d0fbb3afb04da1976064",
        "verify.bare": "76717371bd8847c33e1e2c5a",
        "verify.propagated": "0c2f561e40601bce6e8b9618",
    },
    "png": {
        "input": "d82c23a805e0364cbb05cb18",
        "full": "f078b994a494f43c9cc04d80",
        "full.notes": "bottom-right|embedded|no signer configured|81985529216486895",
        "bare": "e4cba94b066548019c1ec074",
        "bare.notes": "none|off|off",
        "top": "80bc456617180e36f6ca3a2a",
        "propagated": "156131354435b076fc9e22b8",
        "verify.input": "ec911225adaae3e824b54fd1",
        "verify.full": "e22a0a1f630e27ecdfe9e2b3",
        "verify.bare": "bf55daf57b31b1d26afe70a3",
        "verify.propagated": "2c80671163eb68b49b14ea63",
    },
    "text": {
        "input": "42641f576627944d18a78d5b",
        "full": "2d9038dfddd02aa746da9606",
        "full.notes": "start|embedded|not available for text/plain|None",
        "bare": "42641f576627944d18a78d5b",
        "bare.notes": "none|off|off",
        "top": "2d9038dfddd02aa746da9606",
        "propagated": "1d90a23395f5b1ae2f9949b9",
        "verify.input": "872571689ef873e2f7fe528f",
        "verify.full": "9fa2136e7f1799da7f7cb46e",
        "verify.bare": "872571689ef873e2f7fe528f",
        "verify.propagated": "872571689ef873e2f7fe528f",
    },
    "tiff": {
        "input": "42c89c32f1c2f57701ee5a80",
        "full": "0d4a45914c9f2330c5c955ff",
        "full.notes": "bottom-right|embedded|no signer configured|81985529216486895",
        "bare": "78298dee92eefc5474b7469e",
        "bare.notes": "none|off|off",
        "top": "76a84d300d77d64cc96b5987",
        "propagated": "13b757f638c2666f5a60ede0",
        "verify.input": "8202704e231c73db6e48cf98",
        "verify.full": "985d68b31d9706fbc38ebd36",
        "verify.bare": "d7f22780142bd2f0ecdb6849",
        "verify.propagated": "8925dfa19bbbb91d999bfe7c",
    },
    "webp": {
        "input": "f961488213143ca861ba35f0",
        "full": "809f3c3e6a4b0404c6fb7478",
        "full.notes": "bottom-right|embedded|no signer configured|81985529216486895",
        "bare": "6264943abc7cfb3431076258",
        "bare.notes": "none|off|off",
        "top": "dd760e6b91d872e53b455dd3",
        "propagated": "7dd14a69ab956d604597cabf",
        "verify.input": "0c7691ee1bef96fe046e4e49",
        "verify.full": "5a458e7ecb8a99cde9a9d1cb",
        "verify.bare": "ab150fb559c83a695d76d783",
        "verify.propagated": "2dd36801a7431154a65f4b4d",
    },
}


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_labelling_and_verifying_give_the_pinned_outputs(name: str) -> None:
    got = outcomes(name)
    assert got["input"] == GOLDEN[name]["input"], "the input builder changed, not the labeller"
    assert got == GOLDEN[name]


if __name__ == "__main__":
    print("GOLDEN: dict[str, dict[str, str]] = {")
    for key in sorted(INPUTS):
        print(f"    {key!r}: {outcomes(key)!r},")
    print("}")
