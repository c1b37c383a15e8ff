"""Start-up timeline of a Ray run: where the seconds before the first finished file go.

Off unless ``AIGC_RAY_TIMELINE`` names a file. Then the driver, the listing
task and every worker actor append one JSON line per event to it:
``{"t": <epoch s>, "pid": ..., "who": "driver" | "listing" | "actor", "event": ...}``.
The ``AIGC_`` prefix carries the variable to the workers (``rayengine.worker_env``);
on a cluster of several machines each node writes its own file at that path,
and epoch times from different machines are only as close as their clocks.
``benchmarks/batch.py --engine ray --timeline`` prints the merged lines.

Each process first writes ``process started`` with the kernel's start time of
the process (``/proc``), so the gap to its first own event is the
interpreter's and Ray's bootstrap plus the imports. Nothing here may be
costly: one ``os.environ`` look-up when off, one small appended write when on.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

ENV = "AIGC_RAY_TIMELINE"

_started_noted: set[int] = set()


def enabled() -> bool:
    """Whether a timeline file is set (to skip gathering what only the timeline shows)."""
    return bool(os.environ.get(ENV))


def mark(who: str, event: str, **extra: Any) -> None:
    """Append one event (now) to the timeline file, if one is set."""
    path = os.environ.get(ENV)
    if not path:
        return
    now = time.time()
    pid = os.getpid()
    lines = []
    if pid not in _started_noted:  # once per process (a forked child has another pid)
        _started_noted.add(pid)
        started = _process_start()
        if started is not None:
            lines.append({"t": started, "pid": pid, "who": who, "event": "process started"})
    lines.append({"t": now, "pid": pid, "who": who, "event": event, **extra})
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)  # one append: lines of concurrent processes do not interleave
    finally:
        os.close(fd)


def _process_start() -> float | None:
    """This process's start, in epoch seconds (Linux ``/proc``; None elsewhere)."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22 (starttime), counted after "pid (comm)"
        # clock ticks since boot; /proc/stat's btime is whole seconds, too coarse here
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return time.time() - age


def read(path: str) -> list[dict[str, Any]]:
    """The events of a timeline file, oldest first."""
    with open(path) as f:
        events = [json.loads(line) for line in f if line.strip()]
    return sorted(events, key=lambda e: e["t"])


def render(events: list[dict[str, Any]]) -> str:
    """The events as text: seconds since the driver's process started, who, what."""
    if not events:
        return "(no timeline events)"
    drivers = [e for e in events if e["who"] == "driver" and e["event"] == "process started"]
    zero = drivers[0]["t"] if drivers else events[0]["t"]
    names: dict[int, str] = {}
    counts: dict[str, int] = {}
    out = []
    for e in events:
        if e["pid"] not in names:
            counts[e["who"]] = counts.get(e["who"], 0) + 1
            names[e["pid"]] = f"{e['who']}{counts[e['who']]}" if e["who"] == "actor" else e["who"]
        extra = {k: v for k, v in e.items() if k not in ("t", "pid", "who", "event")}
        tail = " " + " ".join(f"{k}={v}" for k, v in extra.items()) if extra else ""
        out.append(f"{e['t'] - zero:8.2f} s  {names[e['pid']]:<8} {e['event']}{tail}")
    return "\n".join(out)
