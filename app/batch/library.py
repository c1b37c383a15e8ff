"""The in-process backend: labelers/detectors and the ledger, in this process."""

from __future__ import annotations

from typing import Any

from app.batch.backend import Backend, Labelled, Propagated, _media_type, build_state, pick_identity
from app.batch.ids import identity_salt
from app.batch.options import BatchOptions
from detectors.carried import carried_ids, propagated_by


class LibraryBackend(Backend):
    """Runs the labelling library in this process, with the embedded ledger."""

    def __init__(self, options: BatchOptions, state: Any = None) -> None:
        from labelers.pipeline import FileOptions, explicit_choice, parse_positions
        from labelers.visible.wording import resolve_wording

        self.options = options
        self.state = state if state is not None else build_state()
        self.limits = self.state.settings.limits
        self.max_bytes = self.limits.max_bytes
        self.identity = (
            None if options.command == "verify" else pick_identity(self.state.keys, options)
        )
        code = ""
        if self.identity is not None:
            code = (
                self.identity.platform if options.command == "propagate" else self.identity.producer
            ) or ""
        self.salt = identity_salt(code)
        wording = resolve_wording(options.wording)
        self.positions = parse_positions(options.position) if options.position else {}
        self.file_options = FileOptions(
            **explicit_choice(options.explicit),
            position=options.position,
            pages=options.pages,
            span=options.span,
            wording=wording,
            watermark=options.watermark,
            c2pa=options.c2pa,
        )
        self.explicit_options = (
            FileOptions(position=options.position, wording=wording, watermark=False, c2pa=False)
            if options.add_explicit
            else None
        )

    def label(self, data: bytes, produce_id: str, name: str) -> Labelled:
        from app.ledger_rows import DuplicateProduceID, watermark_key
        from labelers.pipeline import LabelContext, label_file
        from labelers.record import Record

        st, identity = self.state, self.identity
        record = Record.first_write(identity.producer, produce_id).validate()
        result = label_file(
            data,
            record,
            _for_kind(self.file_options, self.positions, data),
            LabelContext(
                signer=st.signer if self.options.c2pa else None,  # no C2PA: never load its library
                record_signer=st.record_signer,
                software_agent=st.settings.software_agent,
                limits=self.limits,
            ),
            watermark_payload=watermark_key(produce_id),
        )

        def commit() -> str | None:
            try:
                st.ledger.record_label(
                    result.record,
                    result.data,
                    result.media_type,
                    identity.name,
                    result.explicit,
                    self.options.omit_reason,
                    result.watermark_key,
                )
            except DuplicateProduceID:
                return (
                    "ProduceID already in the ledger (issued by an interrupted run); output written"
                )
            return None

        return Labelled(
            result.data,
            result.media_type,
            produce_id,
            result.explicit,
            result.watermark,
            result.c2pa,
            commit,
        )

    def _report(self, data: bytes) -> Any:
        from detectors.files import VerifyContext, verify_file

        st = self.state
        return verify_file(
            data,
            VerifyContext(
                st.lookup,
                trust_anchors_pem=st.trust_anchors_pem,
                keyring=st.keyring,
                limits=self.limits,
            ),
            declared_ai=self.options.declared_ai,
        )

    def verify(self, data: bytes, name: str) -> dict[str, Any]:
        return self._report(data).to_dict()

    def propagate(self, data: bytes, propagate_id: str, name: str) -> Propagated:
        from app.ledger_rows import DuplicateProduceID
        from app.platform import check_and_propagate

        st, identity = self.state, self.identity
        report, result = check_and_propagate(
            st,
            data,
            self.options.declared_ai,
            identity.platform,
            propagate_id,
            self.explicit_options and _for_kind(self.explicit_options, self.positions, data),
        )
        cls = report.classification
        produce_id = report.record.produce_id if report.record else None
        if result is None:
            return Propagated(
                None, report.media_type, produce_id, None, cls, False, "none", "off", lambda: None
            )

        def commit() -> str | None:
            args = (result.record, result.data, result.media_type, cls, identity.name)
            try:
                st.ledger.record_propagation(*args)
            except DuplicateProduceID:
                return "PropagateID already in the ledger (an interrupted run); output written"
            return None

        return Propagated(
            result.data,
            result.media_type,
            produce_id,
            result.record.propagate_id,
            cls,
            result.created,
            result.explicit,
            result.c2pa,
            commit,
        )

    def known_produce_id(self, produce_id: str) -> bool:
        entry = self.state.ledger.get(produce_id)
        return entry is not None and entry.producer == self.identity.producer

    def issued_to_us(self, data: bytes, sha256: str) -> str | None:

        for produce_id in carried_ids(data, self.limits):
            if self.known_produce_id(produce_id):
                return produce_id
        # content the ledger recorded as one of our outputs (e.g. text without a watermark)
        return self.state.ledger.find_by_content(sha256, self.identity.producer)

    def propagated_by_us(self, data: bytes) -> str | None:
        return propagated_by(data, self.identity.platform, self.limits)

    def close(self) -> None:
        self.state.ledger.close()


def _for_kind(file_options: Any, positions: dict[str, str], data: bytes) -> Any:
    """``file_options`` with the position ``--position`` gives this file's kind (or default)."""
    if not positions:
        return file_options
    from dataclasses import replace

    return replace(file_options, position=_position_for(positions, data))


def _position_for(positions: dict[str, str], data: bytes) -> str | None:
    """The position ``--position`` gives the kind of file ``data`` is; None: its default."""
    from labelers.pipeline import position_kind

    return positions.get(position_kind(_media_type(data) or "") or "")
