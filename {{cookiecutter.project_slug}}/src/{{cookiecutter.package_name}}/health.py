"""Liveness, readiness and version: what a platform asks of a disposable process (factor IX)."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app
from spectree import Response as Responses
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from .__about__ import __version__
from .config import Settings
from .db import get_database
from .openapi import api
from .schemas import Health, Readiness, VersionOut

logger = logging.getLogger(__name__)

blueprint = Blueprint("health", __name__)


def check_database() -> str:
    """'ok' if the database answers a trivial query, else the kind of failure."""
    try:
        with get_database().engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        logger.warning("readiness check failed: database: %s", type(error).__name__)
        return "unavailable"
    return "ok"


@blueprint.get("/healthz")
@api.validate(resp=Responses(HTTP_200=Health), tags=["health"])
def healthz() -> Health:
    """Liveness: the process serves requests; touches no backing service."""
    return Health(status="ok")


@blueprint.get("/readyz")
@api.validate(resp=Responses(HTTP_200=Readiness, HTTP_503=Readiness), tags=["health"])
def readyz() -> tuple[Readiness, int]:
    """Readiness: every backing service answers."""
    checks = {"database": check_database()}
    ready = all(result == "ok" for result in checks.values())
    body = Readiness(status="ok" if ready else "unavailable", checks=checks)
    return body, 200 if ready else 503


@blueprint.get("/version")
@api.validate(resp=Responses(HTTP_200=VersionOut), tags=["health"])
def version() -> VersionOut:
    """The code's version and the release it runs as (factor V)."""
    settings: Settings = current_app.extensions["settings"]
    return VersionOut(version=__version__, release=settings.release_id)
