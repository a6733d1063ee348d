"""Error reports: each unhandled exception (a 500) sent to SENTRY_DSN, with the release.

errors.py answers such an exception with a 500 and logs it, traceback and all, at ERROR: the
SDK's logging integration turns that line into the report (as it does any ERROR line with an
exception), and its Flask integration adds the request's method and URL. Reports leave from the
SDK's background thread, so a slow or absent ingest costs the request nothing. Before a report
leaves, every secret value of the service's settings is replaced wherever it appears in it (a
local variable, a URL, a message), beside the SDK's own scrubbing of fields named like secrets.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from urllib.parse import unquote, urlsplit

import sentry_sdk
from flask import Flask
from pydantic import BaseModel, SecretStr
from sentry_sdk.integrations.flask import FlaskIntegration
from sentry_sdk.types import Event, Hint

from ..config import Settings, option_settings
from .settings import ObservabilitySettings

FILTERED = "[Filtered]"
# Shorter values are too likely to occur by chance in a report to be replaced everywhere.
SHORTEST_SECRET = 4


def secret_values(settings: Iterable[BaseModel]) -> list[str]:
    """Every secret the settings hold: SecretStr values, and the passwords inside URLs."""
    found: set[str] = set()
    for model in settings:
        for name, value in model:
            if isinstance(value, SecretStr):
                found.add(value.get_secret_value())
            elif isinstance(value, str) and "://" in value:
                parts = urlsplit(value)
                if parts.password:
                    found.update({parts.password, unquote(parts.password)})
                if name == "sentry_dsn" and parts.username:
                    found.add(parts.username)  # the DSN's key; the SDK sends it in a header
    return sorted(
        (value for value in found if len(value) >= SHORTEST_SECRET), key=len, reverse=True
    )


def scrubber(secrets: list[str]) -> Callable[[Event, Hint], Event]:
    """A before_send that replaces each secret in the whole event, wherever it is."""

    def scrub(event: Event, _hint: Hint) -> Event:
        text = json.dumps(event, default=str)
        for secret in secrets:
            text = text.replace(json.dumps(secret)[1:-1], FILTERED)
        scrubbed: Event = json.loads(text)
        return scrubbed

    return scrub


def init_app(app: Flask, settings: ObservabilitySettings) -> None:
    """Send the app's unhandled exceptions to SENTRY_DSN; with none set, send nothing."""
    if settings.sentry_dsn is None:
        return
    service: Settings = app.extensions["settings"]
    models = [service, *(model.load() for model in option_settings())]
    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        release=service.release_id,
        environment=settings.sentry_environment,
        integrations=[FlaskIntegration()],
        # No personal data (user, cookies, client address): the SDK's default, left as it is,
        # since naming send_default_pii at all is deprecated in favour of data_collection.
        # Spans go to OTLP (traces.py); Sentry gets the errors alone.
        traces_sample_rate=None,
        before_send=scrubber(secret_values(models)),
    )
