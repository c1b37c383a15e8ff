"""HTTP surface (FastAPI). Thin: parse, authorise, call labelers/detectors, ledger.

``create_app()`` is the factory uvicorn runs (``aigc-label serve``).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, FastAPI, File, Form, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import FormData
from starlette.datastructures import UploadFile as StarletteUploadFile

from app import problems
from app.auth import Identity
from app.bodylimit import BodyLimitMiddleware
from app.ledger import DuplicateProduceID, label_row, propagation_row, watermark_key
from app.platform import check_and_propagate
from app.problems import Problem
from app.settings import Settings
from app.state import State
from app.ui import router as ui_router
from detectors.files import verify_file
from detectors.text import verify_text
from labelers.pipeline import FileOptions, label_file, label_text
from labelers.record import Record, charset_violation, new_produce_id
from labelers.visible.wording import resolve_wording

log = logging.getLogger("aigc")
_M = TypeVar("_M", bound=BaseModel)
INLINE_TEXT_CHARS = 20_000


# ------------------------------------------------------------------ models
LabelValue = Literal["1", "2", "3"]
LABEL_HELP = (
    'the record\'s Label: "1" AI-generated (default), "2" possibly, "3" suspected '
    "AI-generated (GB 45438 Annex E)"
)


class TextLabelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

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
    model_config = ConfigDict(extra="forbid")

    text: str
    declared_ai: bool = False


# --------------------------------------------------------------------- app
def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    app = FastAPI(
        title="aigc-label",
        version="1.0",
        summary="Labels AI-generated content per GB 45438-2025 and verifies labels.",
    )
    app.state.aigc = State.build(settings)
    problems.install(app)
    app.add_middleware(
        BodyLimitMiddleware,
        json_limit=settings.max_json_bytes,
        upload_limit=settings.max_upload_bytes,
    )
    _routes(app)
    app.include_router(ui_router(require))  # the moderators' page at /ui
    # Everything built so far (libraries, fonts, keys) lives as long as the
    # process: keep it out of the collector's full scans, which otherwise
    # showed up as tens of milliseconds inside PDF labelling.
    gc.freeze()
    return app


def state(request: Request) -> State:
    return request.app.state.aigc


def require(permission: str) -> Callable[..., Identity]:
    async def dependency(request: Request) -> Identity:  # cheap: no threadpool hop
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
        if not identity.can(permission):
            raise Problem(
                403, "forbidden", f"API key {identity.name!r} lacks the {permission!r} permission"
            )
        return identity

    dependency.__name__ = f"require_{permission}"
    return dependency


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
    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/label/text", response_model=TextLabelResponse, tags=["label"])
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
            report = await run_in_threadpool(verify_text, body.text, st.lookup, body.declared_ai)
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
            st.lookup,
            _form_bool(form, "declared_ai"),
            st.trust_anchors_pem,
            st.settings.limits,
            st.keyring,
            _form_bool(form, "check_visible"),
        )
        return report.to_dict()

    @app.post(
        "/v1/label",
        tags=["label"],
        response_class=Response,
        responses={200: {"content": {"application/octet-stream": {}}}},
    )
    async def label_file_endpoint(
        request: Request,
        identity: Annotated[Identity, Depends(require("label"))],
        file: Annotated[UploadFile, File(description="the AI-generated file")],
        explicit: Annotated[
            Literal["on", "none"], Form(description='"none" needs omit_explicit')
        ] = "on",
        position: Annotated[
            str | None,
            Form(
                description="image: bottom-right (default), corners or edges; "
                "documents: footer (default) or header"
            ),
        ] = None,
        pages: Annotated[
            Literal["all", "first"], Form(description="PDF pages / PPTX slides labelled")
        ] = "all",
        wording: Annotated[str | None, Form()] = None,
        watermark: Annotated[bool, Form()] = True,
        c2pa: Annotated[bool, Form()] = True,
        produce_id: Annotated[str | None, Form(max_length=64)] = None,
        label: Annotated[LabelValue, Form(description=LABEL_HELP)] = "1",
        omit_reason: Annotated[str | None, Form(max_length=500)] = None,
    ) -> Response:
        st = state(request)
        _check_omission(identity, explicit)
        options = FileOptions(
            explicit=explicit != "none",
            position=position,
            pages=pages,
            wording=resolve_wording(wording),
            watermark=watermark,
            c2pa=c2pa,
        )
        record = _mint_record(identity, produce_id, label)
        data = await _upload_bytes(file)
        result = await run_in_threadpool(
            label_file,
            data,
            record,
            options,
            st.signer,
            watermark_key(record.produce_id),
            st.settings.software_agent,
            st.settings.limits,
            st.record_signer,
        )
        await _ledger_insert(
            st,
            result.record,
            result.data,
            result.media_type,
            identity,
            result.explicit,
            omit_reason,
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
        response_class=Response,
        responses={200: {"content": {"application/octet-stream": {}}}},
    )
    async def propagate_endpoint(
        request: Request,
        identity: Annotated[Identity, Depends(require("propagate"))],
        file: Annotated[UploadFile, File(description="the uploaded file")],
        declared_ai: Annotated[
            bool, Form(description="the uploader declares the content AI-generated")
        ] = False,
        propagate_id: Annotated[str | None, Form(max_length=64)] = None,
        add_explicit: Annotated[
            bool, Form(description="draw the visible label when the file shows none")
        ] = False,
        position: Annotated[str | None, Form()] = None,
        wording: Annotated[str | None, Form()] = None,
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

    @app.get("/v1/records/{produce_id}", tags=["records"])
    def get_record(
        produce_id: str,
        request: Request,
        identity: Annotated[Identity, Depends(require("read_records"))],
    ) -> dict[str, Any]:
        entry = state(request).ledger.get(produce_id)
        if entry is None:
            raise Problem(404, "not-found", f"no label with ProduceID {produce_id!r} in the ledger")
        return entry.to_dict()


async def _ledger_insert(
    st: State,
    record: Record,
    content: bytes,
    media_type: str,
    identity: Identity,
    explicit: str,
    omit_reason: str | None,
) -> None:
    row = label_row(record, content, media_type, identity.name, explicit, omit_reason)
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
