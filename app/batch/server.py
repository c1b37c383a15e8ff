"""The --server backend: the same questions asked of a running service over HTTP."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from app.batch.backend import Backend, BackendError, Labelled, Propagated
from app.batch.ids import bump_id, identity_salt
from app.batch.library import _position_for
from app.batch.options import BatchOptions
from detectors.carried import carried_ids, propagated_by


class ServerBackend(Backend):
    """Sends each file to a running service (``--server``) over HTTP."""

    RETRIES = 3

    def __init__(self, options: BatchOptions) -> None:
        import httpx

        from labelers.limits import DEFAULT_LIMITS

        self.options = options
        self.limits = DEFAULT_LIMITS  # for reading outputs back locally
        self.max_bytes = DEFAULT_LIMITS.max_bytes
        key = options.api_key or ""
        self.salt = identity_salt("server:" + hashlib.sha256(key.encode()).hexdigest())
        self.client = httpx.Client(
            base_url=(options.server or "").rstrip("/"),
            headers={"Authorization": f"Bearer {key}"},
            timeout=httpx.Timeout(300.0, connect=10.0),
        )
        self.platform: str | None = None  # learnt from the first write-back
        from labelers.pipeline import parse_positions

        self.positions = parse_positions(options.position) if options.position else {}

    def _post(self, path: str, name: str, data: bytes, form: dict[str, str]) -> Any:
        import httpx

        for attempt in range(self.RETRIES):
            try:
                return self.client.post(
                    path, files={"file": (name, data, "application/octet-stream")}, data=form
                )
            except httpx.TransportError as exc:
                if attempt == self.RETRIES - 1:
                    raise BackendError(
                        "server-unreachable", f"{self.options.server}{path}: {exc}"
                    ) from None
                time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    @staticmethod
    def _problem(response: Any) -> BackendError:
        try:
            body = response.json()
            kind = str(body.get("type", "")).rsplit("/", 1)[-1] or f"http-{response.status_code}"
            detail = str(body.get("detail") or body)
        except ValueError:
            kind, detail = f"http-{response.status_code}", response.text[:500]
        return BackendError(kind, f"server answered {response.status_code}: {detail}")

    def _label_form(self, produce_id: str, data: bytes) -> dict[str, str]:
        o = self.options
        form = {
            "explicit": o.explicit,
            "pages": o.pages,
            "watermark": str(o.watermark).lower(),
            "c2pa": str(o.c2pa).lower(),
            "produce_id": produce_id,
        }
        for key in ("wording", "omit_reason"):
            value = getattr(o, key)
            if value is not None:
                form[key] = value
        position = _position_for(self.positions, data)
        if position is not None:
            form["position"] = position
        return form

    def label(self, data: bytes, produce_id: str, name: str) -> Labelled:
        note = None
        for _ in range(5):
            response = self._post("/v1/label", name, data, self._label_form(produce_id, data))
            if response.status_code == 409:
                # issued before, its output lost with an interrupted run: same family, next ID
                produce_id = bump_id(produce_id)
                note = "ProduceID issued by an interrupted run; labelled again as " + produce_id
                continue
            if response.status_code != 200:
                raise self._problem(response)
            h = response.headers
            return Labelled(
                response.content,
                h.get("content-type", "").split(";")[0].strip(),
                h.get("AIGC-Produce-ID", produce_id),
                h.get("AIGC-Explicit", ""),
                h.get("AIGC-Watermark", ""),
                h.get("AIGC-C2PA", ""),
                lambda note=note: note,
            )
        raise BackendError("duplicate-produce-id", f"the service refused ProduceID {produce_id}")

    def verify(self, data: bytes, name: str) -> dict[str, Any]:
        form = {"declared_ai": str(self.options.declared_ai).lower()}
        response = self._post("/v1/verify", name, data, form)
        if response.status_code != 200:
            raise self._problem(response)
        return response.json()

    def propagate(self, data: bytes, propagate_id: str, name: str) -> Propagated:
        from labelers.record import Record

        o = self.options
        note = None
        for _ in range(5):
            form = {
                "declared_ai": str(o.declared_ai).lower(),
                "propagate_id": propagate_id,
                "add_explicit": str(o.add_explicit).lower(),
            }
            if o.wording is not None:
                form["wording"] = o.wording
            position = _position_for(self.positions, data)
            if position is not None:
                form["position"] = position
            response = self._post("/v1/propagate", name, data, form)
            if response.status_code == 409:
                propagate_id = bump_id(propagate_id)
                note = (
                    "PropagateID issued by an interrupted run; propagated again as " + propagate_id
                )
                continue
            if response.status_code != 200:
                raise self._problem(response)
            h = response.headers
            media_type = h.get("content-type", "").split(";")[0].strip()
            cls = h.get("AIGC-Classification", "")
            if "AIGC-Propagate-ID" not in h:
                return Propagated(
                    None, media_type, None, None, cls, False, "none", "off", lambda: None
                )
            record = Record.parse(h["AIGC-Record"])
            self.platform = record.content_propagator
            return Propagated(
                response.content,
                media_type,
                record.produce_id or None,
                record.propagate_id,
                cls,
                h.get("AIGC-Record-Created") == "true",
                h.get("AIGC-Explicit", ""),
                h.get("AIGC-C2PA", ""),
                lambda note=note: note,
            )
        raise BackendError(
            "duplicate-propagate-id", f"the service refused PropagateID {propagate_id}"
        )

    def known_produce_id(self, produce_id: str) -> bool:
        import httpx

        try:
            response = self.client.get(f"/v1/records/{produce_id}")
        except httpx.TransportError:
            return True  # cannot tell: never label twice
        return response.status_code != 404

    def issued_to_us(self, data: bytes, sha256: str) -> str | None:
        for produce_id in carried_ids(data, self.limits):
            if self.known_produce_id(produce_id):
                return produce_id
        return None

    def propagated_by_us(self, data: bytes) -> str | None:
        return propagated_by(data, self.platform, self.limits)

    def close(self) -> None:
        self.client.close()
