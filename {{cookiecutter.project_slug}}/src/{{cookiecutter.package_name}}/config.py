"""Settings for every process, read from the environment and nowhere else (factor III)."""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path
from typing import Any, ClassVar, Literal, NoReturn, Self

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from .chosen_options import hook

# Variables whose value may instead come from a mounted file named by <NAME>_FILE.
SECRET_VARIABLES = ("DATABASE_URL", "SECRET_KEY")

# Placeholder words that mark a SECRET_KEY nobody generated.
PLACEHOLDER_SECRET_WORDS = ("changeme", "change-me", "change_me", "replace-me", "your-secret")
SECRET_KEY_MIN_LENGTH = 16

POSTGRES_SCHEMES = ("postgresql", "postgresql+psycopg2", "postgres")
DRIVER_SCHEME = "postgresql+psycopg2"


class ConfigError(Exception):
    """A required setting is missing or malformed; the message names the variable."""


class FileSecretsSource(PydanticBaseSettingsSource):
    """Reads DATABASE_URL_FILE-style variables, so secrets can be mounted as files."""

    def __init__(self, settings_cls: type[BaseSettings], secret_variables: tuple[str, ...]) -> None:
        super().__init__(settings_cls)
        self.secret_variables = secret_variables

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: all values are gathered at once in __call__."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        """Return the secrets found in files, keyed by field name."""
        values: dict[str, Any] = {}
        for variable in self.secret_variables:
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


class EnvironmentSettings(BaseSettings):
    """How every settings model of the service is read: the service's own, and an option's.

    An option chosen when the service was generated declares its knobs in a model of its own
    built on this one, so that this module stays the only reader of the environment.
    """

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    # The model's variables that may be given as <NAME>_FILE instead.
    secret_variables: ClassVar[tuple[str, ...]] = ()

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
        return init_settings, env_settings, FileSecretsSource(settings_cls, cls.secret_variables)

    @classmethod
    def load(cls, **overrides: Any) -> Self:
        """Read and validate the settings, or raise ConfigError naming the first bad variable."""
        try:
            return cls(**overrides)
        except ValidationError as error:
            raise ConfigError(describe_validation_error(error)) from None

    @classmethod
    def load_or_exit(cls, program: str) -> Self:
        """Load the settings for a process entry point; on error print one line and exit 1."""
        try:
            return cls.load()
        except ConfigError as error:
            exit_naming(program, error)


def option_settings() -> list[type[EnvironmentSettings]]:
    """The settings models of the options chosen when the service was generated, each
    checked at start with the service's own (see chosen_options.py)."""
    return list(hook("SETTINGS"))


class Settings(EnvironmentSettings):
    """Every knob the service has, one line each, with its type and default."""

    secret_variables = SECRET_VARIABLES

    database_url: str = Field(description="PostgreSQL URL; postgres:// is accepted")
    secret_key: SecretStr = Field(description="Signs sessions; at least 16 characters")
    port: int = Field(default=8000, ge=1, le=65535)
    web_concurrency: int = Field(default=2, ge=1, le=64)
    web_connections: int = Field(
        default=1000, ge=1, le=100_000, description="clients each worker serves at once"
    )
    web_timeout: int = Field(default=30, ge=1, description="seconds before a hung worker is killed")
    web_header_timeout: int = Field(
        default=10, ge=1, le=300, description="seconds a client has to send a request's head"
    )
    web_body_timeout: int = Field(
        default=30, ge=1, le=3600, description="seconds a client has to send a request's body"
    )
    graceful_timeout: int = Field(default=20, ge=1, description="seconds to finish requests")
    drain_seconds: int = Field(
        default=5, ge=0, le=60, description="seconds of not-ready serving after SIGTERM"
    )
    keepalive: int = Field(
        default=5, ge=1, le=300, description="seconds a connection waits for its next request"
    )
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
    database_pool_size: int = Field(
        default=5, ge=1, le=100, description="database connections each process holds at most"
    )

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
    """Read and validate the settings, or raise ConfigError naming the first bad variable.

    The chosen options' settings are checked too, so that no process starts without them;
    an option reads its own model again (EnvironmentSettings.load) where it needs the values.
    """
    settings = Settings.load(**overrides)
    for model in option_settings():
        model.load()
    return settings


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
        exit_naming(program, error)


def share_with_children(name: str, value: str) -> None:
    """Set a variable for a library that reads it from the environment alone, and for the
    processes this one starts (gunicorn's workers, forked from it, say)."""
    os.environ[name] = value


def exit_naming(program: str, error: ConfigError) -> NoReturn:
    """Stop a process that cannot start: one line naming the bad variable, exit status 1."""
    print(f"{program}: configuration error: {error}", file=sys.stderr)
    raise SystemExit(1) from None
