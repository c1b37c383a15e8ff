"""Shared helpers for the file benchmarks: interleaved timing, machine load, tables.

Every benchmark reports ratios against a baseline measured in the same run:
the candidates and the baseline are timed in turn, round after round, so a
load spike on a shared machine hits all of them alike, and the median of the
rounds is kept.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(ROOT))


def interleaved_medians(
    jobs: Mapping[str, Callable[[], object]], rounds: int, warmup: int = 1
) -> dict[str, float]:
    """Median wall time in seconds of each job, run in turn ``rounds`` times.

    ``warmup`` untimed rounds come first (imports, font loading, first-use caches).
    """
    return interleaved_wall_and_cpu(jobs, rounds, warmup)[0]


def interleaved_wall_and_cpu(
    jobs: Mapping[str, Callable[[], object]], rounds: int, warmup: int = 1
) -> tuple[dict[str, float], dict[str, float]]:
    """(wall, CPU) median seconds of each job, as :func:`interleaved_medians` runs them.

    CPU is this process's time (all threads): on a machine shared with other
    work it is the one-core cost, which the load disturbs far less than wall time.
    """
    for _ in range(warmup):
        for job in jobs.values():
            job()
    wall: dict[str, list[float]] = {name: [] for name in jobs}
    cpu: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(rounds):
        for name, job in jobs.items():
            c, w = time.process_time(), time.perf_counter()
            job()
            cpu[name].append(time.process_time() - c)
            wall[name].append(time.perf_counter() - w)
    med = statistics.median
    return {k: med(v) for k, v in wall.items()}, {k: med(v) for k, v in cpu.items()}


def machine() -> str:
    """One line naming the machine and its load, for the results table."""
    try:
        uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        uptime = f"load average: {load}"
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"`uptime`: {uptime}"
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}"


DOCS = ROOT / "docs" / "benchmarks.md"
INTRO = (
    "# Benchmarks\n\n"
    "Every number here that compares is a ratio against a baseline measured in the same "
    "run on the same machine (a bare decode/encode, a plain read/write, a peer library), "
    "timed in interleaved rounds, because absolute times on a shared machine mean little; "
    "each section gives the command that reproduces it and the machine's load at the time.\n"
)


def update_section(heading: str, body: str, path: Path = DOCS) -> None:
    """Replace the ``## heading`` section of docs/benchmarks.md (append it if absent).

    Other sections belong to other benchmarks and are left byte-for-byte alone.
    """
    text = path.read_text() if path.exists() else INTRO
    marker = f"## {heading}\n"
    section = f"{marker}\n{body.strip()}\n"
    start = text.find(marker)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(marker))
        text = text[:start] + section + (text[end:] if end >= 0 else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
