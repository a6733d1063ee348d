"""The drain (factor IX): after SIGTERM, the web process keeps serving, not ready, for a while.

Alone, gunicorn closes its listeners as soon as it gets SIGTERM, and the connections still
waiting in the listen backlog are reset. Here the master first marks itself draining: /readyz
answers 503, which takes the process out of the load balancer, while the workers go on
accepting and serving. DRAIN_SECONDS later it stops as gunicorn always does. A second SIGTERM
changes nothing; SIGINT and SIGQUIT still stop at once.

The drain needs SIGTERM to reach the master alone, as docker stop and Kubernetes send it (to
PID 1). A supervisor that signals every process of the group stops the workers at once; with
systemd, use KillMode=mixed.
"""

from __future__ import annotations

import mmap
import signal
from typing import Any

# One byte of memory shared by the master and its workers, which inherit it when they are
# forked: 1 while the master drains. Made when the master imports this module, before any fork.
FLAG = mmap.mmap(-1, 1)


def is_draining() -> bool:
    """Whether the master has started draining."""
    return FLAG[0] == 1


def drain_on_sigterm(server: Any, seconds: int) -> None:
    """Make gunicorn's master (its Arbiter) drain for `seconds` on SIGTERM, then stop
    gracefully as it would have at once."""
    graceful_stop = type(server).handle_term  # gunicorn's own handling of SIGTERM

    def start_draining() -> None:
        if is_draining():
            return
        FLAG[0] = 1
        server.log.info("Draining for %s s: not ready, still serving", seconds)
        # The alarm ends the drain: gunicorn queues SIGALRM like any signal, then calls
        # handle_alrm from its main loop, which goes on reaping and replacing workers.
        signal.signal(signal.SIGALRM, server.signal)
        signal.setitimer(signal.ITIMER_REAL, seconds)

    server.handle_term = start_draining
    server.handle_alrm = lambda: graceful_stop(server)
