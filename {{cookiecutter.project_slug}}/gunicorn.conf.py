"""gunicorn's settings for the web process, from the environment; the code is in web_server/."""

import os
from importlib import metadata

from gevent import monkey

# Evented workers: patched before the app is imported (preload_app), so all it makes
# cooperates; the master keeps the real fork, waitpid and signals it is written for, and
# each worker patches those in (web_server/concurrency.py). gevent looks up its plugins in
# every installed package's entry points 19 times in one patch: they are read once, and
# each lookup selects from what was read, here and in the forked workers.
metadata.entry_points = metadata.entry_points().select
monkey.patch_all(os=False, signal=False, subprocess=False)

from {{ cookiecutter.package_name }}.config import settings_or_exit
from {{ cookiecutter.package_name }}.web_server import (
    access_log,
    concurrency,
    server_hooks,
)

settings = settings_or_exit("gunicorn")
hooks = server_hooks.ServerHooks(settings)

# Port binding (VII): the service is self-contained and binds the port it is given.
bind = [f"0.0.0.0:{settings.port}"]

# Concurrency (VIII): more worker processes per deployment; each serves up to
# WEB_CONNECTIONS clients, and cuts off one that sends its request too slowly.
workers = settings.web_concurrency
worker_connections = settings.web_connections
worker_class = concurrency.CooperativeWorker.with_limits(
    header_seconds=settings.web_header_timeout,
    body_seconds=settings.web_body_timeout,
    max_content_length=settings.max_content_length,
)
# Imported once in the master, the code's pages are shared by the workers it forks. A reload
# (SIGHUP) rereads these settings but not the code: deploy a new release instead.
preload_app = True
pre_fork = hooks.pre_fork
post_fork = hooks.post_fork

# Disposability (IX): on SIGTERM, drain (DRAIN_SECONDS), then finish what is in flight.
timeout = settings.web_timeout
graceful_timeout = settings.graceful_timeout
keepalive = settings.keepalive
when_ready = on_reload = hooks.when_ready
child_exit = hooks.child_exit
worker_exit = hooks.worker_exit
post_worker_init = hooks.post_worker_init

# In the foreground, no pid file, no control socket; worker heartbeats in RAM.
daemon = False
pidfile = None
control_socket_disable = True
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108

# Proxies believed about the scheme and the client (web_server/proxies.py); none by default.
forwarded_allow_ips = settings.forwarded_allow_ips

# Logs (XI): access and error lines on stdout, as the app's JSON events.
accesslog = errorlog = "-"
loglevel = settings.log_level.lower()
logger_class = access_log.JsonLogger
