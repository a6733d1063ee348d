"""The worker process type, as the Procfile's worker line runs it (factor VIII).

It builds a Flask app with the data layer only (no HTTP routes) so tasks run inside an
app context with the same settings, database and logging as the web process.
"""

from __future__ import annotations

from typing import Any

from celery.signals import setup_logging
from flask import Flask

from . import db, tasks
from .config import settings_or_exit
from .logging import configure_logging

settings = settings_or_exit("celery")
flask_app = Flask(__name__)
flask_app.extensions["settings"] = settings
db.init_app(flask_app, settings)
celery_app = tasks.init_app(flask_app, settings)


@setup_logging.connect
def use_service_logging(**_kwargs: Any) -> None:
    """Log as the web process does (JSON lines on stdout) instead of Celery's own format."""
    configure_logging(settings)
