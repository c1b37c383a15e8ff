"""The local engine: a process pool handing one file per task to a Worker,
the journal and the progress bar."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from typing import Any

from app.batch.backend import Backend
from app.batch.journal import Journal
from app.batch.options import MAX_CRASHES, BatchOptions, Summary, Task, failure_text
from app.batch.worker import Worker, _failed, _init_worker, _run_task


def run(
    options: BatchOptions,
    tasks: list[Task],
    journal: Journal,
    workers: int,
    progress: bool,
    on_line: Callable[[dict[str, Any]], None] | None = None,
    backend: Backend | None = None,
) -> Summary:
    """Process ``tasks`` in ``workers`` processes; journal each file; the summary.

    ``backend`` is the one the caller prepared in this process: a single file
    is handled with it right here (a pool would fork and build a second
    ledger, key store and signer for one file, which is most of what a
    one-shot run would cost); for a pool it is closed first, since database
    connections must not cross a fork.
    """
    summary = Summary()
    todo = [t for t in tasks if not journal.is_done(t)]
    summary.resumed = len(tasks) - len(todo)
    started = time.monotonic()
    tally = Tally(journal, summary, _progress_bar(len(todo), progress), on_line)
    finish = tally.finish

    queue = list(reversed(todo))  # pop() from the end keeps the walk order
    try:
        if backend is not None and len(todo) == 1:
            # one file: handled here, not worth a process pool and a second set of keys
            finish(Worker(options, backend).handle(todo[0]))
        else:
            if backend is not None:
                backend.close()
            _preload()
            workers = max(1, min(workers, len(todo)))
            window = workers * 4  # bounded in-flight work: quick to stop, little memory
            while queue:
                crashed = _drain(options, queue, workers, window, finish)
                for task in crashed:
                    if task.crashes + 1 >= MAX_CRASHES:
                        finish(
                            _failed(
                                task,
                                "worker-crashed",
                                "the worker process died while handling this file "
                                f"({MAX_CRASHES} times)",
                            )
                        )
                    else:
                        queue.append(Task(task.src, task.dest, task.crashes + 1))
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        tally.close()
    summary.seconds = time.monotonic() - started
    return summary


class Tally:
    """What an engine does with each finished file's line: journal it, count it in
    the summary, show a failure, move the progress bar. Every engine uses one, so
    the report and the summary mean the same whichever engine ran."""

    def __init__(
        self,
        journal: Journal,
        summary: Summary,
        bar: Any = None,
        on_line: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.journal, self.summary, self.bar, self.on_line = journal, summary, bar, on_line

    def finish(self, line: dict[str, Any]) -> None:
        summary, bar = self.summary, self.bar
        self.journal.record(line)
        summary.counts[line["outcome"]] += 1
        if line.get("classification"):
            summary.classes[line["classification"]] += 1
        if line["outcome"] == "failed":
            failure = (line["path"], line.get("error_kind") or "error", line.get("error") or "")
            summary.failures.append(failure)
            message = "aigc-label: failed: " + failure_text(*failure)
            if bar is not None:
                bar.write(message, file=sys.stderr)
            else:
                print(message, file=sys.stderr, flush=True)
        if bar is not None:
            bar.update(1)
        if self.on_line is not None:
            self.on_line(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _drain(
    options: BatchOptions,
    queue: list[Task],
    workers: int,
    window: int,
    finish: Callable[[dict[str, Any]], None],
) -> list[Task]:
    """Run the queue in one pool; return the tasks in flight if the pool broke."""
    import concurrent.futures as cf  # here: a one-file run never starts a pool
    import multiprocessing

    context = (
        multiprocessing.get_context("fork")
        if "fork" in multiprocessing.get_all_start_methods()
        else None
    )
    pool = cf.ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(options,)
    )
    running: dict[cf.Future[dict[str, Any]], Task] = {}
    try:
        while queue or running:
            while queue and len(running) < window:
                task = queue.pop()
                running[pool.submit(_run_task, task)] = task
            done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            if any(isinstance(f.exception(), cf.process.BrokenProcessPool) for f in done):
                # a worker died (a crash in native code): keep what finished, retry the rest
                cf.wait(running)
                lost = []
                for future, task in running.items():
                    if future.exception() is None:
                        finish(future.result())
                    else:
                        lost.append(task)
                return lost
            for future in done:
                del running[future]
                finish(future.result())
        return []
    except KeyboardInterrupt:
        # stop handing out files; the ones being labelled finish and are journaled
        for future in running:
            future.cancel()
        for future in running:
            if not future.cancelled():
                with contextlib.suppress(Exception):
                    finish(future.result())
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _preload() -> None:
    """Import the heavy libraries once in the parent: forked workers share them."""
    import importlib

    for module in ("detectors.files", "labelers.pipeline", "labelers.watermark.text"):
        importlib.import_module(module)


def _progress_bar(total: int, wanted: bool) -> Any:
    if not wanted or not sys.stderr.isatty() or total == 0:
        return None
    from tqdm import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: the pool may fork again after a crash
    return tqdm(total=total, unit="file", file=sys.stderr, dynamic_ncols=True, smoothing=0.1)
