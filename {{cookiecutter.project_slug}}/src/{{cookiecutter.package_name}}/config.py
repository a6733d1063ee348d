"""Settings for every process, read from the environment and nowhere else (factor III)."""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

# Variables whose value may instead come from a mounted file named by <NAME>_FILE.
SECRET_VARIABLES = ("DATABASE_URL", "SECRET_KEY"{% if cookiecutter.worker == "celery" %}, "REDIS_URL"{% endif %})

# Placeholder words that mark a SECRET_KEY nobody generated.
PLACEHOLDER_SECRET_WORDS = ("changeme", "change-me", "change_me", "replace-me", "your-secret")
SECRET_KEY_MIN_LENGTH = 16

POSTGRES_SCHEMES = ("postgresql", "postgresql+psycopg2", "postgres")
{%- if cookiecutter.worker == "celery" %}
REDIS_SCHEMES = ("redis://", "rediss://")
{%- endif %}
DRIVER_SCHEME = "postgresql+psycopg2"


class ConfigError(Exception):
    """A required setting is missing or malformed; the message names the variable."""


class FileSecretsSource(PydanticBaseSettingsSource):
    """Reads DATABASE_URL_FILE-style variables, so secrets can be mounted as files."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: all values are gathered at once in __call__."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        """Return the secrets found in files, keyed by field name."""
        values: dict[str, Any] = {}
        for variable in SECRET_VARIABLES:
            path = os.environ.get(f"{variable}_FILE")
            if not path:
                continue
            if os.environ.get(variable):
                raise ConfigError(f"set {variable} or {variable}_FILE, not both")
            try:
                values[variable.lower()] = Path(path).read_text(encoding="utf-8").strip()
            except OSError as error:
                raise ConfigError(
                    f"{variable}_FILE names a file that cannot be read ({error.strerror})"
                ) from None
        return values


class Settings(BaseSettings):
    """Every knob the service has, one line each, with its type and default."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    database_url: str = Field(description="PostgreSQL URL; postgres:// is accepted")
    secret_key: SecretStr = Field(description="Signs sessions; at least 16 characters")
    port: int = Field(default=8000, ge=1, le=65535)
    web_concurrency: int = Field(default=2, ge=1, le=64)
    web_threads: int = Field(default=1, ge=1, le=64)
    web_timeout: int = Field(default=30, ge=1, description="seconds before a hung worker is killed")
    graceful_timeout: int = Field(default=20, ge=1, description="seconds to finish requests")
    drain_seconds: int = Field(
        default=5, ge=0, le=60, description="seconds of not-ready serving after SIGTERM"
    )
    keepalive: int = Field(default=5, ge=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    release_id: str = Field(default="unknown", max_length=200)
    max_content_length: int = Field(default=1024 * 1024, ge=1)
    forwarded_allow_ips: str = Field(
        default="", description="proxies whose X-Forwarded-* headers are believed; none by default"
    )
    api_docs_enabled: bool = Field(default=True, description="serve the API page at /docs")
    database_statement_timeout: int = Field(default=10, ge=1, description="seconds per statement")
    database_lock_timeout: int = Field(default=5, ge=1, description="seconds to wait for a lock")
    database_pool_timeout: int = Field(
        default=5, ge=1, description="seconds to wait for a pooled connection"
    )
    database_pool_size: int | None = Field(
        default=None, ge=1, le=100, description="connections per process; default WEB_THREADS"
    )
{%- if cookiecutter.worker == "celery" %}
    redis_url: str = Field(description="Redis URL of the task broker and result store")
    worker_concurrency: int = Field(default=2, ge=1, le=64)
    task_time_limit: int = Field(default=300, ge=2, description="seconds before a task is killed")
    task_soft_time_limit: int = Field(
        default=270, ge=1, description="seconds before a task is told to stop and clean up"
    )
    broker_visibility_timeout: int = Field(
        default=3600, ge=2, description="seconds before an unacknowledged task is redelivered"
    )
{%- endif %}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Explicit values, then the environment, then <NAME>_FILE; never a .env file."""
        return init_settings, env_settings, FileSecretsSource(settings_cls)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_case_format(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _addresses_or_networks(cls, value: str) -> str:
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        for entry in entries:
            if entry == "*":
                continue
            try:
                ipaddress.ip_network(entry)
            except ValueError:
                raise ValueError(
                    "must be IP addresses or networks (such as 10.0.0.0/8) separated by "
                    "commas, or *"
                ) from None
        return ",".join(entries)

    @field_validator("database_url")
    @classmethod
    def _postgresql_url(cls, value: str) -> str:
        scheme, separator, rest = value.partition("://")
        if not separator or scheme not in POSTGRES_SCHEMES:
            raise ValueError("must be a PostgreSQL URL such as postgresql://user@host:5432/name")
        # SQLAlchemy picks its driver from the scheme; this service ships psycopg2, and
        # Heroku-style postgres:// URLs would otherwise be refused.
        return f"{DRIVER_SCHEME}://{rest}"
{%- if cookiecutter.worker == "celery" %}

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not value.startswith(REDIS_SCHEMES):
            raise ValueError("must be a Redis URL such as redis://host:6379/0")
        return value

    @model_validator(mode="after")
    def _task_limits_in_order(self) -> Settings:
        # The soft limit comes first, so a task can clean up before the hard one kills it; a
        # task still running when its visibility timeout ends would be run twice at once.
        if self.task_soft_time_limit >= self.task_time_limit:
            raise ValueError("TASK_SOFT_TIME_LIMIT must be shorter than TASK_TIME_LIMIT")
        if self.broker_visibility_timeout <= self.task_time_limit:
            raise ValueError("BROKER_VISIBILITY_TIMEOUT must be longer than TASK_TIME_LIMIT")
        return self
{%- endif %}

    @model_validator(mode="after")
    def _database_waits_end_before_the_worker_timeout(self) -> Settings:
        # A request that waits for a connection and then for its statement must get its 503
        # while its worker still lives; past WEB_TIMEOUT gunicorn kills the worker instead.
        if self.database_pool_timeout + self.database_statement_timeout >= self.web_timeout:
            raise ValueError(
                "DATABASE_POOL_TIMEOUT plus DATABASE_STATEMENT_TIMEOUT must be shorter than "
                "WEB_TIMEOUT"
            )
        return self

    @field_validator("secret_key")
    @classmethod
    def _strong_secret(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if len(secret) < SECRET_KEY_MIN_LENGTH:
            raise ValueError(f"must be at least {SECRET_KEY_MIN_LENGTH} random characters")
        if len(set(secret)) < SECRET_KEY_MIN_LENGTH // 2 or any(
            word in secret.lower() for word in PLACEHOLDER_SECRET_WORDS
        ):
            raise ValueError("looks like a placeholder; generate a random one")
        return value


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the settings, or raise ConfigError naming the first bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error)) from None


def describe_validation_error(error: ValidationError) -> str:
    """One line per bad variable, naming it and what is accepted, never echoing its value."""
    problems = []
    for detail in error.errors(include_input=False, include_url=False):
        reason = detail["msg"].removeprefix("Value error, ")
        if not detail["loc"]:
            problems.append(reason)
        elif detail["type"] == "missing":
            problems.append(f"{str(detail['loc'][0]).upper()} is required but not set")
        else:
            problems.append(f"{str(detail['loc'][0]).upper()} {reason[:1].lower()}{reason[1:]}")
    return "; ".join(problems)


def settings_or_exit(program: str) -> Settings:
    """Load the settings for a process entry point; on error print one line and exit 1."""
    try:
        return load_settings()
    except ConfigError as error:
        print(f"{program}: configuration error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
