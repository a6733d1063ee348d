"""Liveness, readiness and version: what a platform asks of a disposable process (factor IX)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, current_app, request
from spectree import Response as Responses

from .__about__ import __version__
from .config import Settings
from .db import READINESS_CHECKS
from .openapi import documented
from .schemas import Health, Readiness, VersionOut
from .web_server.wsgi import DRAINING_ENVIRON_KEY

logger = logging.getLogger(__name__)

blueprint = Blueprint("health", __name__)


def run_check(name: str, check: Callable[[], object]) -> str:
    """'ok' if the check passes, else 'unavailable' (the cause goes to the log, not the caller)."""
    try:
        check()
    except Exception as error:
        logger.warning("readiness check failed: %s: %s", name, type(error).__name__)
        return "unavailable"
    return "ok"


# Built once: every liveness probe gets the same answer.
HEALTHY = Health(status="ok").model_dump()


@blueprint.get("/healthz")
@documented(resp=Responses(HTTP_200=Health), tags=["health"])
def healthz() -> dict[str, Any]:
    """Liveness: the process serves requests; touches no backing service."""
    return HEALTHY


@blueprint.get("/readyz")
@documented(
    resp=Responses(
        HTTP_200=Readiness,
        HTTP_503=(Readiness, "A backing service did not answer, or the server is draining."),
    ),
    tags=["health"],
)
def readyz() -> tuple[dict[str, Any], int]:
    """Readiness: every backing service answers, and the server is not shutting down."""
    registered: dict[str, Callable[[], object]] = current_app.extensions[READINESS_CHECKS]
    checks = {name: run_check(name, check) for name, check in registered.items()}
    # Absent under `flask run` and the test client: only the web server drains.
    if request.environ.get(DRAINING_ENVIRON_KEY):
        checks["shutdown"] = "draining"
    ready = all(result == "ok" for result in checks.values())
    body = Readiness(status="ok" if ready else "unavailable", checks=checks)
    return body.model_dump(), 200 if ready else 503


@blueprint.get("/version")
@documented(resp=Responses(HTTP_200=VersionOut), tags=["health"])
def version() -> dict[str, Any]:
    """The code's version and the release it runs as (factor V)."""
    settings: Settings = current_app.extensions["settings"]
    return VersionOut(version=__version__, release=settings.release_id).model_dump()
