"""The task queue's settings: its broker, and the limits of the processes that run tasks."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from ..config import EnvironmentSettings

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
