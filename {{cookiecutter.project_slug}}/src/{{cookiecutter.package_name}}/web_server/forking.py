"""What gunicorn's master does around forking a worker: share memory, and lose no stop signal."""

from __future__ import annotations

import contextlib
import gc
import os
import queue
import signal
from typing import Any

# A stop signal sent to the whole process group (Ctrl-C in a terminal, or a supervisor that
# signals the group) while gunicorn is forking a worker used to be lost: until the worker
# installs its own handlers, the child still runs the master's, which only queue the signal
# for the master's loop, a loop the child never runs. The master then waited GRACEFUL_TIMEOUT
# for a worker that did not know it was to stop. With preload_app a first request is served
# while the next worker is still being forked, so this window is open just when a quick start
# and stop (a test, a newcomer's Ctrl-C) meets it.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


def keep_shared_pages_shared() -> None:
    """Before a fork: keep the inherited objects out of the workers' garbage collection,
    which would otherwise touch, and so copy, every page they share with the master."""
    gc.freeze()


def stop_on_stop_signals(server: Any) -> None:
    """In a new worker: stop signals stop it until it takes them over; one it received
    already (queued in its copy of the master's signal queue) stops it at once."""
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, signal.SIG_DFL)
    queued = []
    with contextlib.suppress(queue.Empty):
        while True:
            queued.append(server.SIG_QUEUE.get_nowait())
    if any(received in STOP_SIGNALS for received in queued):
        os._exit(0)
