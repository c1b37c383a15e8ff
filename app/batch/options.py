"""What a batch run is given and what it reports: options, tasks, the summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

COMMANDS = ("label", "verify", "propagate")


#: outcomes that finish a file: a rerun with the same report does not touch it again
DONE = frozenset({"labelled", "skipped", "verified", "propagated"})


PARTIAL_SUFFIX = ".aigc-partial"


#: the fields every file line of the report has, in this order (others follow)
LINE_KEYS = ("path", "output", "media_type", "produce_id", "outcome", "error", "error_kind")


REPORT_VERSION = 1


#: a task whose worker process died this many times is reported failed, not retried
MAX_CRASHES = 2


#: failures listed again in the closing summary (each is printed as it happens too)
MAX_FAILURES_SHOWN = 20


class BatchError(Exception):
    """The batch cannot start: bad arguments, identity, report or output tree."""


@dataclass(frozen=True)
class BatchOptions:
    """Everything a worker needs, picklable (sent once to each worker)."""

    command: str
    # label (mirrors POST /v1/label)
    explicit: str = "on"  # on | rhythm | speech (audio) | none
    position: str | None = None
    pages: str = "all"
    span: str = "start"  # video: how long the label shows
    wording: str | None = None
    watermark: bool = True
    c2pa: bool = True
    omit_reason: str | None = None
    # verify / propagate
    declared_ai: bool = False
    add_explicit: bool = False  # propagate: draw the visible label when none shows
    # identity and backend
    key_name: str | None = None
    server: str | None = None
    api_key: str | None = None
    in_place: bool = False


@dataclass(frozen=True)
class Task:
    """One input file and where its result goes."""

    src: str  # path as the user will recognise it (input root joined with the relative path)
    dest: str | None  # output path (None for verify)
    crashes: int = 0


@dataclass
class Summary:
    counts: Counter[str] = field(default_factory=Counter)
    classes: Counter[str] = field(default_factory=Counter)  # verify/propagate: Art. 6 classes
    resumed: int = 0  # finished in an earlier run (journal), not looked at again
    seconds: float = 0.0
    interrupted: bool = False
    #: Ray engine: seconds until the first result (cluster workers starting up)
    first_result: float | None = None
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # path, kind, detail

    @property
    def processed(self) -> int:
        return sum(self.counts.values())

    @property
    def failed(self) -> int:
        return self.counts.get("failed", 0)

    @property
    def rate(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "summary",
            "counts": dict(sorted(self.counts.items())),
            "classifications": dict(sorted(self.classes.items())),
            "processed": self.processed,
            "resumed": self.resumed,
            "seconds": round(self.seconds, 3),
            "files_per_second": round(self.rate, 2),
            "interrupted": self.interrupted,
        } | ({} if self.first_result is None else {"first_result": round(self.first_result, 3)})

    def text(self, command: str) -> str:
        parts = [f"{n} {outcome}" for outcome, n in sorted(self.counts.items())] or ["0 files"]
        line = f"{command}: " + ", ".join(parts)
        if self.classes:
            line += " (" + ", ".join(f"{c} {n}" for c, n in sorted(self.classes.items())) + ")"
        line += f" in {self.seconds:.1f} s ({self.rate:.1f} files/s)"
        if self.resumed:
            line += f"; {self.resumed} already done in an earlier run"
        if self.interrupted:
            line += "; INTERRUPTED: run the same command again to finish"
        shown = self.failures[:MAX_FAILURES_SHOWN]
        if shown:
            line += "\nfailed:" + "".join(failure_text(*f, indent="\n  ") for f in shown)
            if len(self.failures) > len(shown):
                line += f"\n  ... and {len(self.failures) - len(shown)} more (see --report)"
        return line


def failure_text(path: str, kind: str, detail: str, indent: str = "") -> str:
    """One failure as the user reads it: which file, what kind of problem, why."""
    return f"{indent}{path}: {kind}: {detail}"
