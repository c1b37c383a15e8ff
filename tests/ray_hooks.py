"""Set-up hooks for the Ray workers of the tests (``runtime_env`` ``worker_process_setup_hook``).

Kept in their own small module so that a worker imports only this, not a
test module with its fixtures.
"""

from __future__ import annotations

import os
import signal

#: a file whose name starts with this kills the worker that handles it, as a crash in
#: native code would (SIGKILL: no Python clean-up, no exception the worker could catch)
KILLS_THE_WORKER = "kills-the-worker"


def kill_the_worker_on_poisoned_files() -> None:
    """Make ``Worker.handle`` die on files named ``KILLS_THE_WORKER...``; others are untouched."""
    from app.batch import worker

    real = worker.Worker.handle

    def handle(self, task):  # type: ignore[no-untyped-def]
        if os.path.basename(task.src).startswith(KILLS_THE_WORKER):
            os.kill(os.getpid(), signal.SIGKILL)
        return real(self, task)

    worker.Worker.handle = handle  # type: ignore[method-assign]
