"""Background tasks on a Celery task queue with a Redis broker (factor VIII): what they add.

A todo gains an `archived_at` column, set by the archive task; the service gains the
broker's settings; the web app gains POST /api/todos/<id>/archive and a Redis readiness
check. The tasks themselves are in tasks.py, the process that runs them in worker.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, field_validator, model_validator
from sqlalchemy import Column, DateTime

from ..config import OPTION_SETTINGS, EnvironmentSettings
from ..models import Base, Todo

if TYPE_CHECKING:
    from flask import Flask

REDIS_SCHEMES = ("redis://", "rediss://")


class TaskQueueSettings(EnvironmentSettings):
    """The knobs of the broker and of the processes that take tasks from it."""

    secret_variables = ("REDIS_URL",)

    redis_url: str = Field(description="Redis URL of the task broker and result store")
    worker_concurrency: int = Field(default=2, ge=1, le=64)
    task_time_limit: int = Field(default=300, ge=2, description="seconds before a task is killed")
    task_soft_time_limit: int = Field(
        default=270, ge=1, description="seconds before a task is told to stop and clean up"
    )
    broker_visibility_timeout: int = Field(
        default=3600, ge=2, description="seconds before an unacknowledged task is redelivered"
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not value.startswith(REDIS_SCHEMES):
            raise ValueError("must be a Redis URL such as redis://host:6379/0")
        return value

    @model_validator(mode="after")
    def _task_limits_in_order(self) -> TaskQueueSettings:
        # The soft limit comes first, so a task can clean up before the hard one kills it; a
        # task still running when its visibility timeout ends would be run twice at once.
        if self.task_soft_time_limit >= self.task_time_limit:
            raise ValueError("TASK_SOFT_TIME_LIMIT must be shorter than TASK_TIME_LIMIT")
        if self.broker_visibility_timeout <= self.task_time_limit:
            raise ValueError("BROKER_VISIBILITY_TIMEOUT must be longer than TASK_TIME_LIMIT")
        return self


OPTION_SETTINGS.append(TaskQueueSettings)

# Set once by the archive task (worker process); null until then. It is a column of the todos
# row itself, so every read of a todo shows it (schemas.TodoOut shows each column of the row).
ARCHIVED_AT = Column("archived_at", DateTime(timezone=True), nullable=True)
Base.metadata.tables["todos"].append_column(ARCHIVED_AT)
Todo.__mapper__.add_property("archived_at", ARCHIVED_AT)


def init_app(app: Flask) -> None:
    """Give the web app the task queue and the archive route; exit naming a bad variable."""
    # Imported here, as create_app imports the web modules: the migrations import this module
    # for its column alone.
    from .. import archive, tasks

    tasks.init_app(app, TaskQueueSettings.load_or_exit(app.import_name))
    app.register_blueprint(archive.blueprint)
