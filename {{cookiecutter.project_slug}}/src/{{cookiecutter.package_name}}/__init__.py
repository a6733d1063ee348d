"""The application factory: builds the Flask app from settings and wires its parts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .__about__ import __version__
from .chosen_options import call
from .config import Settings, settings_or_exit
from .logging import configure_logging

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["__version__", "create_app"]


def create_app(settings: Settings | None = None) -> Flask:
    """Build the application from settings (by default, from the environment)."""
    # Imported here rather than at the top so that gunicorn's master process and the
    # migrations, which need only config and logging, start without the web stack.
    from flask import Flask

    from . import (
        api_docs,
        cli,
        db,
        errors,
        health,
        openapi,
        request_ids,
        security_headers,
        sessions,
        todos,
        url_converters,
    )

    settings = settings or settings_or_exit(__name__)
    configure_logging(settings)

    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key.get_secret_value(),
        MAX_CONTENT_LENGTH=settings.max_content_length,
    )
    app.extensions["settings"] = settings

    url_converters.init_app(app)
    sessions.init_app(app)
    request_ids.init_app(app)
    security_headers.init_app(app)
    errors.init_app(app)
    db.init_app(app, settings)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(todos.blueprint)
    call("init_app", app)
    openapi.init_app(app)
    api_docs.init_app(app, settings)
    cli.init_app(app)
    return app
