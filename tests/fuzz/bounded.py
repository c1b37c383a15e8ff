"""Run a function on inputs in a child process with a time and memory limit per input.

Hostile inputs hang inside C code (a regex holding the GIL, a decoder) where
no signal handler runs, so the watchdog must be another process: a child runs
the inputs in order and reports each result over a pipe; the parent kills it
when one input takes longer than ``seconds`` and starts a fresh child for the
rest. The child's address space is capped with RLIMIT_AS (``memory_bytes``
above what it had at start), so a bomb fails with MemoryError instead of
taking the machine.

Used by the fuzz tests (tests/fuzz) and by the long by-hand run (benchmarks/fuzz.py).
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from labelers.errors import AigcError


@dataclass
class Outcome:
    index: int
    status: str  # "ok", "rejected" (one of our error types), "crash", "hang", "memory"
    detail: str = ""
    seconds: float = 0.0
    peak_rss_kb: int = 0


def _vm_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * resource.getpagesize()


def _child(fn: Callable[[bytes], Any], inputs: list[bytes], start: int, conn: Any, mem: int):
    resource.setrlimit(resource.RLIMIT_AS, (_vm_bytes() + mem, resource.RLIM_INFINITY))
    for index in range(start, len(inputs)):
        conn.send(("start", index))
        t0 = time.perf_counter()
        try:
            fn(inputs[index])
            status, detail = "ok", ""
        except AigcError as exc:
            status, detail = "rejected", f"{type(exc).__name__}: {exc.detail}"[:300]
        except MemoryError:
            status, detail = "memory", "MemoryError"
        except BaseException as exc:  # the harness is looking for exactly these
            status = "crash"
            detail = "".join(traceback.format_exception(exc))[-2000:]
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        conn.send(("done", Outcome(index, status, detail, time.perf_counter() - t0, rss)))
    conn.send(("end", None))


def run_bounded(
    fn: Callable[[bytes], Any],
    inputs: Iterable[bytes],
    seconds: float = 5.0,
    memory_bytes: int = 1 << 30,
) -> list[Outcome]:
    """One Outcome per input. ``fn`` must be picklable by reference (a module-level function)."""
    inputs = list(inputs)
    ctx = mp.get_context("fork")
    outcomes: list[Outcome] = []
    start = 0
    while start < len(inputs):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_child, args=(fn, inputs, start, child, memory_bytes))
        proc.start()
        child.close()
        current, began = start, time.perf_counter()
        try:
            while True:
                if not parent.poll(seconds):
                    outcomes.append(Outcome(current, "hang", f"over {seconds} s", seconds))
                    break
                kind, value = parent.recv()
                if kind == "start":
                    current, began = value, time.perf_counter()
                elif kind == "done":
                    outcomes.append(value)
                elif kind == "end":
                    current = len(inputs) - 1
                    break
        except EOFError:  # the child died (a segfault, the OOM killer)
            outcomes.append(
                Outcome(current, "crash", "worker process died", time.perf_counter() - began)
            )
        finally:
            proc.kill()
            proc.join()
            parent.close()
        start = current + 1
    return outcomes
