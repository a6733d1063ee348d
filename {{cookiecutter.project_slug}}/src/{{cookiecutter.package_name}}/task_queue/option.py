"""The task queue option, as the core reaches it (see chosen_options.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .data_model import todo_columns
from .settings import TaskQueueSettings

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["SETTINGS", "init_app", "todo_columns"]

SETTINGS = TaskQueueSettings


def init_app(app: Flask) -> None:
    """Give the web app the task queue and the archive route; exit naming a bad variable."""
    # Imported here, as create_app imports the web modules: models.py reads this module
    # for the columns alone.
    from ..chosen_options import call
    from .celery_app import make_celery
    from .routes import blueprint

    make_celery(app, TaskQueueSettings.load_or_exit(app.import_name))
    app.register_blueprint(blueprint)
    call("init_task_publisher", app)
