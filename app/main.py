"""HTTP surface (FastAPI). Thin: parse, authorise, call labelers/detectors, ledger.

``create_app()`` is the factory uvicorn runs (``aigc-label serve``).
"""

from __future__ import annotations

import gc
import logging
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, FastAPI, File, Form, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import FormData
from starlette.datastructures import UploadFile as StarletteUploadFile

from app import ops, problems
from app.auth import Identity
from app.bodylimit import BodyLimitMiddleware
from app.docs import install_docs
from app.ledger import DuplicateProduceID, Ledger, label_row, propagation_row, watermark_key
from app.platform import check_and_propagate
from app.problems import Problem
from app.settings import Settings
from app.state import State
from app.ui import router as ui_router
from detectors.files import verify_file
from detectors.text import verify_text
from labelers.imaging import DECODE_GATE
from labelers.pipeline import FileOptions, explicit_choice, label_file, label_text
from labelers.record import Record, charset_violation, new_produce_id
from labelers.visible.wording import resolve_wording

log = logging.getLogger("aigc")
_M = TypeVar("_M", bound=BaseModel)
INLINE_TEXT_CHARS = 20_000
#: label/propagate answer with the file itself, in the media type sniffed from it
FILE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the file, same media type as the upload (image/png, text/markdown, ...)",
        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
    }
}
API_DESCRIPTION = """
Labels AI-generated content the way GB 45438-2025 and the CAC labelling Measures
require (a visible label, the seven-field implicit record in the file's metadata,
an invisible watermark, a C2PA manifest) and verifies labels on uploads.

**Try it here:** press **Authorize** and paste your API key (development mode
prints one at start). Errors are RFC 9457 `application/problem+json` whose
`detail` names the problem.
"""


# ------------------------------------------------------------------ models
LabelValue = Literal["1", "2", "3"]
WORDING_HELP = (
    'label wording or a preset ("zh" 人工智能生成, "zh-short" AI生成, "zh-synthetic" '
    '人工智能合成, "bilingual"); custom wording needs 人工智能/AI and 生成/合成'
)
LABEL_HELP = (
    'the record\'s Label: "1" AI-generated (default), "2" possibly, "3" suspected '
    "AI-generated (GB 45438 Annex E)"
)


class TextLabelRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"text": "春眠不觉晓，处处闻啼鸟。", "explicit": "start"},
                {"text": "An AI-written paragraph.", "explicit": "end", "wording": "bilingual"},
            ]
        },
    )

    text: str = Field(description="the AI-generated text")
    explicit: Literal["start", "end", "both", "none"] = Field(
        "start", description='where the visible label goes; "none" needs omit_explicit'
    )
    wording: str | None = Field(
        None,
        description='label wording or a preset ("zh", "zh-short", "zh-synthetic", "bilingual")',
    )
    watermark: bool = Field(True, description="embed the invisible payload")
    produce_id: str | None = Field(None, max_length=64, description="your own ProduceID")
    label: LabelValue = Field("1", description=LABEL_HELP)
    omit_reason: str | None = Field(
        None, max_length=500, description="why the explicit label is omitted (Art. 9 log)"
    )


class RecordModel(BaseModel):
    Label: str
    ContentProducer: str
    ProduceID: str
    ReservedCode1: str
    ContentPropagator: str
    PropagateID: str
    ReservedCode2: str


class TextLabelResponse(BaseModel):
    text: str
    produce_id: str
    record: RecordModel
    explicit: str
    wording: str | None
    watermark: bool


class TextVerifyRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"text": "<text labelled by /v1/label/text>"}]},
    )

    text: str
    declared_ai: bool = False


# --------------------------------------------------------------------- app
def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    app = FastAPI(
        title="aigc-label",
        version="1.0",
        summary="Labels AI-generated content per GB 45438-2025 and verifies labels.",
        description=API_DESCRIPTION,
        docs_url=None,  # served offline by app.docs
        redoc_url=None,
        responses=problems.RESPONSES,
    )
    app.state.aigc = State.build(settings).prepare()
    DECODE_GATE.configure(
        settings.max_concurrent_decodes,
        settings.decode_memory_bytes,
        settings.decode_wait_seconds,
    )
    problems.install(app)
    install_docs(app)
    app.add_middleware(
        BodyLimitMiddleware,
        json_limit=settings.max_json_bytes,
        upload_limit=settings.max_upload_bytes,
        read_timeout=settings.body_read_timeout_seconds,
    )
    app.add_middleware(ops.OpsMiddleware)  # outermost: times and counts every answer
    _routes(app)
    app.include_router(ui_router(require))  # the moderators' page at /ui
    # Everything built so far (libraries, fonts, keys) lives as long as the
    # process: keep it out of the collector's full scans, which otherwise
    # showed up as tens of milliseconds inside PDF labelling.
    gc.freeze()
    return app


def state(request: Request) -> State:
    return request.app.state.aigc


class ApiKey(HTTPBearer):
    """The dependency that admits a request holding an API key with one permission.

    It is an ``HTTPBearer``, so the OpenAPI document declares the scheme and
    /docs shows Authorize, but it reads the header itself and answers
    problem+json. One dependency, not a bearer sub-dependency under ours:
    FastAPI resolves each level on every request, and on the text endpoint
    that level cost about a tenth of the request.
    """

    def __init__(self, permission: str) -> None:
        super().__init__(
            auto_error=False,
            scheme_name="apiKey",
            description="An API key: `Authorization: Bearer <key>`. In development mode the "
            "service prints a generated key at start and keeps it in `<data dir>/dev-api-key`.",
        )
        self.permission = permission

    async def __call__(self, request: Request) -> Identity:  # type: ignore[override]
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="aigc-label"'}
        if scheme.lower() != "bearer" or not token.strip():
            raise Problem(
                401, "unauthorized", "missing API key: send Authorization: Bearer <key>", challenge
            )
        identity = state(request).keys.identify(token.strip())
        if identity is None:
            raise Problem(401, "unauthorized", "unknown API key", challenge)
        if not identity.can(self.permission):
            raise Problem(
                403,
                "forbidden",
                f"API key {identity.name!r} lacks the {self.permission!r} permission",
            )
        return identity


def require(permission: str) -> ApiKey:
    return ApiKey(permission)


def _mint_record(identity: Identity, produce_id: str | None, label: str = "1") -> Record:
    if produce_id is not None:
        problem = charset_violation(produce_id)
        if problem or not produce_id:
            raise Problem(422, "invalid-record", f"produce_id {problem or 'must not be empty'}")
    assert identity.producer is not None  # guaranteed by load_keys for "label"
    return Record.first_write(
        identity.producer, produce_id or new_produce_id(), label=label
    ).validate()


def _check_omission(identity: Identity, explicit: str) -> None:
    if explicit == "none" and not identity.can("omit_explicit"):
        raise Problem(
            403,
            "forbidden",
            "omitting the explicit label needs the 'omit_explicit' permission "
            "(Measures Art. 9: only under a user agreement, and it is logged)",
        )


def _routes(app: FastAPI) -> None:
    @app.get(
        "/healthz",
        tags=["service"],
        summary="Liveness check",
        description='Answers `{"status": "ok"}` while the process serves; no key needed.',
    )
    async def healthz() -> dict[str, str]:
        # async: answered on the event loop, never queued behind busy threadpool workers
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["service"],
        summary="Readiness check",
        description='Answers `{"status": "ready"}` when the ledger database answers, '
        "else a 503 problem; no key needed.",
    )
    async def readyz(request: Request) -> dict[str, str]:
        try:
            await run_in_threadpool(state(request).ledger.ping)
        except Exception as exc:  # any database failure means: not ready
            log.warning("readiness: the ledger does not answer: %s", exc)
            raise Problem(503, "not-ready", "the ledger database does not answer") from None
        return {"status": "ready"}

    @app.get(
        "/metrics",
        tags=["service"],
        summary="Prometheus metrics",
        description="Requests, latencies per endpoint and media type, classifications, "
        "requests refused by a limit and decodes in flight, in the Prometheus text format.",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}},
    )
    def metrics() -> Response:
        body, content_type = ops.metrics_body()
        return Response(body, media_type=content_type)

    @app.post(
        "/v1/label/text",
        response_model=TextLabelResponse,
        tags=["label"],
        summary="Label a text",
        description="Adds the visible label (`explicit`: at the start, end, both, or none "
        "with the `omit_explicit` permission) and an invisible Unicode payload carrying the "
        "ProduceID, and records the label in the ledger. Text has no metadata, so the "
        "record lives in the ledger and is found again through the payload.",
    )
    async def label_text_endpoint(
        body: TextLabelRequest,
        request: Request,
        identity: Annotated[Identity, Depends(require("label"))],
    ) -> Response:
        st = state(request)
        _check_omission(identity, body.explicit)
        wording = resolve_wording(body.wording)
        record = _mint_record(identity, body.produce_id, body.label)
        args = (body.text, record, body.explicit, wording, body.watermark, st.settings.limits)
        # short texts take well under a millisecond: a threadpool hop costs more
        if len(body.text) <= INLINE_TEXT_CHARS:
            labelled = label_text(*args)
        else:
            labelled = await run_in_threadpool(label_text, *args)
        await _ledger_insert(
            st,
            record,
            labelled.encode("utf-8"),
            "text/plain",
            identity,
            body.explicit,
            body.omit_reason,
        )
        # built by us, so skip re-validating it through the response model
        return JSONResponse(
            {
                "text": labelled,
                "produce_id": record.produce_id,
                "record": record.as_dict(),
                "explicit": body.explicit,
                "wording": None if body.explicit == "none" else wording,
                "watermark": body.watermark,
            }
        )

    @app.post(
        "/v1/verify",
        tags=["verify"],
        summary="Verify a file or a text (Measures Art. 6)",
        description="Classifies the upload as `confirmed` (a record, in metadata or "
        "recovered from our watermark), `possible` (no record but `declared_ai`), "
        "`suspected` (visible AI wording, another generator's traces, a C2PA or IPTC AI "
        "source type) or `none`, with the `rule` that decided, every record and piece of "
        "evidence found, the integrity of ReservedCode1/2, and conformance findings. Send "
        'JSON `{"text": ...}` for text, multipart with a `file` field for files.',
        openapi_extra={
            "requestBody": {
                "content": {
                    "application/json": {"schema": TextVerifyRequest.model_json_schema()},
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "file": {"type": "string", "format": "binary"},
                                "declared_ai": {"type": "boolean"},
                                "check_visible": {
                                    "type": "boolean",
                                    "description": "OCR images for the visible label even "
                                    "when they carry a record",
                                },
                            },
                            "required": ["file"],
                        }
                    },
                },
                "required": True,
            }
        },
    )
    async def verify_endpoint(
        request: Request, identity: Annotated[Identity, Depends(require("verify"))]
    ) -> dict[str, Any]:
        st = state(request)
        ctype = request.headers.get("content-type", "").lower()
        if ctype.startswith("application/json"):
            body = _parse_json(TextVerifyRequest, await request.body())
            report = await run_in_threadpool(
                verify_text, body.text, st.lookup, body.declared_ai, st.trust_anchors_pem
            )
            ops.CLASSIFICATIONS.labels("/v1/verify", report.classification).inc()
            return report.to_dict()
        if not ctype.startswith("multipart/form-data"):
            raise Problem(
                415,
                "unsupported-media",
                "send JSON {\"text\": ...} or multipart/form-data with a 'file' field",
            )
        form = await request.form(max_files=1, max_fields=10)
        upload = form.get("file")
        if not isinstance(upload, StarletteUploadFile):
            raise Problem(422, "invalid-request", "multipart body needs a 'file' field")
        data = await _upload_bytes(upload)
        report = await run_in_threadpool(
            verify_file,
            data,
            st.verify_context,
            _form_bool(form, "declared_ai"),
            _form_bool(form, "check_visible"),
        )
        request.state.media_type = report.media_type
        ops.CLASSIFICATIONS.labels("/v1/verify", report.classification).inc()
        return report.to_dict()

    @app.post(
        "/v1/label",
        tags=["label"],
        summary="Label a file",
        description="Visible label, invisible watermark, the metadata record and a C2PA "
        "manifest, in that order, for images (JPEG, PNG, WebP, TIFF, GIF, AVIF), video "
        "(MP4, MOV, M4V, WebM, MKV), PDF, "
        "DOCX/PPTX/XLSX, Markdown, HTML, plain text and audio (WAV, MP3, FLAC, Ogg, M4A: an "
        "audible label); the media type is sniffed from the "
        "bytes. Answers the labelled file in the same format; the `AIGC-*` headers say what "
        "was done (`AIGC-Watermark` and `AIGC-C2PA` say why a step was skipped).",
        response_class=Response,
        responses=FILE_RESPONSE,
    )
    async def label_file_endpoint(
        request: Request,
        identity: Annotated[Identity, Depends(require("label"))],
        file: Annotated[UploadFile, File(description="the AI-generated file")],
        explicit: Annotated[
            Literal["on", "rhythm", "speech", "none"],
            Form(
                description='the explicit label; audio: "rhythm" (Morse "AI", the default for '
                '"on") or "speech" (the wording spoken); "none" needs omit_explicit'
            ),
        ] = "on",
        position: Annotated[
            str | None,
            Form(
                description="image and video: bottom-right (default), corners or edges; "
                "documents: footer (default) or header; audio: start (default), end or both, "
                "or before or after the clip (it gets longer)"
            ),
        ] = None,
        pages: Annotated[
            Literal["all", "first"], Form(description="PDF pages / PPTX slides labelled")
        ] = "all",
        span: Annotated[
            str,
            Form(
                max_length=32,
                description="video: how long the label shows: start (the first 3 s), "
                "start:N (the first N seconds, N >= 2), whole, start+end",
            ),
        ] = "start",
        wording: Annotated[str | None, Form(description=WORDING_HELP, examples=["zh"])] = None,
        watermark: Annotated[bool, Form(description="embed the invisible watermark")] = True,
        c2pa: Annotated[bool, Form(description="sign a C2PA manifest (last step)")] = True,
        produce_id: Annotated[
            str | None,
            Form(max_length=64, description="your own ProduceID (default: a new ULID)"),
        ] = None,
        label: Annotated[LabelValue, Form(description=LABEL_HELP)] = "1",
        omit_reason: Annotated[
            str | None,
            Form(max_length=500, description="why the visible label is omitted (Art. 9 log)"),
        ] = None,
    ) -> Response:
        st = state(request)
        _check_omission(identity, explicit)
        options = FileOptions(
            **explicit_choice(explicit),
            position=position,
            pages=pages,
            span=span,
            wording=resolve_wording(wording),
            watermark=watermark,
            c2pa=c2pa,
        )
        record = _mint_record(identity, produce_id, label)
        data = await _upload_bytes(file)
        result = await run_in_threadpool(
            label_file, data, record, options, st.label_context, watermark_key(record.produce_id)
        )
        del data  # a video can be large: hold only the labelled copy from here on
        request.state.media_type = result.media_type
        await _ledger_insert(
            st,
            result.record,
            result.data,
            result.media_type,
            identity,
            result.explicit,
            omit_reason,
            result.watermark_key,
        )
        return Response(
            result.data,
            media_type=result.media_type,
            headers={
                "AIGC-Produce-ID": record.produce_id,
                "AIGC-Record": result.record.dumps(),
                "AIGC-Explicit": result.explicit,
                "AIGC-Watermark": _ascii_header(result.watermark),
                "AIGC-C2PA": _ascii_header(result.c2pa),
            },
        )

    @app.post(
        "/v1/propagate",
        tags=["propagate"],
        summary="Write a platform's propagation fields into an upload (Measures Art. 6)",
        description="Verifies the upload, then writes the calling platform's "
        "ContentPropagator, PropagateID and signed ReservedCode2 into the file's one record "
        '(creating it with Label "1", "2" or "3" for confirmed, possible and suspected '
        "content) and re-signs C2PA with the upload as parent ingredient. Content judged "
        "`none` comes back unchanged.",
        response_class=Response,
        responses=FILE_RESPONSE,
    )
    async def propagate_endpoint(
        request: Request,
        identity: Annotated[Identity, Depends(require("propagate"))],
        file: Annotated[UploadFile, File(description="the uploaded file")],
        declared_ai: Annotated[
            bool, Form(description="the uploader declares the content AI-generated")
        ] = False,
        propagate_id: Annotated[
            str | None,
            Form(max_length=64, description="the platform's ID for this upload (default: new)"),
        ] = None,
        add_explicit: Annotated[
            bool, Form(description="draw the visible label when the file shows none")
        ] = False,
        position: Annotated[
            str | None, Form(description="where add_explicit draws the label", examples=["top"])
        ] = None,
        wording: Annotated[str | None, Form(description=WORDING_HELP)] = None,
    ) -> Response:
        st = state(request)
        assert identity.platform is not None  # guaranteed by load_keys for "propagate"
        if propagate_id is not None and (charset_violation(propagate_id) or not propagate_id):
            raise Problem(
                422,
                "invalid-record",
                f"propagate_id {charset_violation(propagate_id) or 'must not be empty'}",
            )
        explicit_options = None
        if add_explicit:
            explicit_options = FileOptions(
                position=position, wording=resolve_wording(wording), watermark=False, c2pa=False
            )
        data = await _upload_bytes(file)
        report, result = await run_in_threadpool(
            check_and_propagate,
            st,
            data,
            declared_ai,
            identity.platform,
            propagate_id,
            explicit_options,
        )
        headers = {"AIGC-Classification": report.classification}
        request.state.media_type = report.media_type
        ops.CLASSIFICATIONS.labels("/v1/propagate", report.classification).inc()
        if result is None:  # nothing says AI: the file goes back untouched, no record written
            return Response(data, media_type=report.media_type, headers=headers)
        row = propagation_row(
            result.record, result.data, result.media_type, report.classification, identity.name
        )
        try:
            await st.inserter.insert(row)
        except DuplicateProduceID:
            raise Problem(
                409,
                "duplicate-propagate-id",
                f"PropagateID {result.record.propagate_id} was already issued",
            ) from None
        headers |= {
            "AIGC-Propagate-ID": result.record.propagate_id,
            "AIGC-Record": result.record.dumps(),
            "AIGC-Record-Created": "true" if result.created else "false",
            "AIGC-Explicit": result.explicit,
            "AIGC-C2PA": _ascii_header(result.c2pa),
        }
        return Response(result.data, media_type=result.media_type, headers=headers)

    @app.get(
        "/v1/records/{produce_id}",
        tags=["records"],
        summary="Read a ledger entry",
        description="The label issued under `produce_id`: its record, content SHA-256, "
        "media type, producer, requester, whether the visible label was omitted and why, "
        "and when.",
    )
    def get_record(
        produce_id: str,
        request: Request,
        identity: Annotated[Identity, Depends(require("read_records"))],
    ) -> dict[str, Any]:
        ledger = state(request).ledger
        entry = ledger.get(produce_id)
        # an entry outside the key's scope answers as if absent: a 403 would
        # confirm to anyone with read_records that the ProduceID exists
        if entry is not None and not _may_read(identity, entry.producer, ledger, produce_id):
            entry = None
        if entry is None:
            raise Problem(404, "not-found", f"no label with ProduceID {produce_id!r} in the ledger")
        return entry.to_dict()


def _may_read(identity: Identity, producer: str, ledger: Ledger, produce_id: str) -> bool:
    """The issuing producer, the platforms that propagated it, or read_all_records."""
    if identity.can("read_all_records") or identity.producer == producer:
        return True
    return bool(identity.platform) and identity.platform in ledger.propagators(produce_id)


async def _ledger_insert(
    st: State,
    record: Record,
    content: bytes,
    media_type: str,
    identity: Identity,
    explicit: str,
    omit_reason: str | None,
    mark_key: int | None = None,
) -> None:
    row = label_row(record, content, media_type, identity.name, explicit, omit_reason, mark_key)
    try:
        await st.inserter.insert(row)
    except DuplicateProduceID:
        raise Problem(
            409, "duplicate-produce-id", f"ProduceID {record.produce_id} was already issued"
        ) from None


def _form_bool(form: FormData, name: str) -> bool:
    value = str(form.get(name, "false")).strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        raise Problem(422, "invalid-request", f"{name} must be true or false, not {value!r}")
    return value in ("true", "1", "yes", "on")


async def _upload_bytes(upload: StarletteUploadFile) -> bytes:
    data = await upload.read()
    if not data:
        raise Problem(422, "corrupt-input", "the uploaded file is empty")
    return data


def _ascii_header(value: str) -> str:
    """HTTP header values must be latin-1; our status strings are ASCII already."""
    return value.encode("ascii", "replace").decode()


def _parse_json(model: type[_M], raw: bytes) -> _M:
    """Validate a JSON body read by hand (endpoints that also take multipart)."""
    if not raw.strip():
        raise Problem(400, "invalid-request", "empty request body: expected JSON")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        parts = [
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        ]
        status = 400 if any(e["type"] == "json_invalid" for e in exc.errors()) else 422
        raise Problem(status, "invalid-request", "; ".join(parts)) from None
