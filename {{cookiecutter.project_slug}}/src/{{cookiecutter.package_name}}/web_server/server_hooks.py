"""gunicorn's server hooks for the web process, as gunicorn.conf.py names them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..chosen_options import call
from ..config import Settings
from .draining import drain_on_sigterm, is_draining
from .forking import keep_shared_pages_shared, stop_on_stop_signals
from .proxies import TrustedProxies
from .wsgi import DRAINING_ENVIRON_KEY, WsgiApp


class ServerHooks:
    """The hooks, each a method with gunicorn's signature, bound to the service's settings."""

    def __init__(self, settings: Settings) -> None:
        self.drain_seconds = settings.drain_seconds
        self.proxies = TrustedProxies(settings.forwarded_allow_ips)

    def pre_fork(self, _server: Any, _worker: Any) -> None:
        """In the master, before it forks a worker."""
        keep_shared_pages_shared()

    def post_fork(self, server: Any, _worker: Any) -> None:
        """In a new worker, first thing."""
        stop_on_stop_signals(server)

    def when_ready(self, server: Any) -> None:
        """In the master, once it listens (and again on a reload, SIGHUP): start what the
        chosen options serve beside the app, then drain on SIGTERM before the graceful stop."""
        call("web_server_ready")
        if self.drain_seconds:
            drain_on_sigterm(server, self.drain_seconds)

    def child_exit(self, _server: Any, worker: Any) -> None:
        """In the master: a worker has exited; the chosen options forget it (its share of
        the metrics, say)."""
        call("web_worker_exited", worker.pid)

    def worker_exit(self, _server: Any, _worker: Any) -> None:
        """In a worker that has stopped serving, before its interpreter shuts down: the chosen
        options send what they still hold (the last spans, say) while they can."""
        call("web_worker_stopping")

    def post_worker_init(self, worker: Any) -> None:
        """In a worker about to serve: tell the app, with every request, whether the server
        is draining and who the client is."""
        app: WsgiApp = worker.wsgi
        proxies = self.proxies

        def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            environ[DRAINING_ENVIRON_KEY] = is_draining()
            if proxies:  # with no proxy trusted, the peer's address stands as it is
                environ["REMOTE_ADDR"] = proxies.client_address(environ)
            return app(environ, start_response)

        worker.wsgi = serve
