"""The observability option's settings: the three signals' knobs, named as the OpenTelemetry
and Sentry SDKs document them."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from ..config import EnvironmentSettings

TraceSampler = Literal[
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
]
SERVICE_NAME = "{{ cookiecutter.project_slug }}"
RATIO_SAMPLERS = ("traceidratio", "parentbased_traceidratio")
# A resource attribute as OTEL_RESOURCE_ATTRIBUTES lists them: key=value, comma-separated.
RESOURCE_ATTRIBUTE = re.compile(r"[^=,\s][^=,]*=[^,]*")


class ObservabilitySettings(EnvironmentSettings):
    """The knobs of the three signals. Each is optional: unset, the signal stays local."""

    secret_variables = ("SENTRY_DSN",)

    otel_sdk_disabled: bool = Field(default=False, description="true: no spans at all")
    otel_service_name: str = Field(default=SERVICE_NAME, min_length=1, max_length=200)
    otel_resource_attributes: str = Field(
        default="", description="more attributes of every span: key=value,key=value"
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP collector; unset, spans are made but not sent"
    )
    otel_traces_sampler: TraceSampler = "parentbased_always_on"
    otel_traces_sampler_arg: float = Field(
        default=1.0, description="the share of traces a ratio sampler keeps, 0 to 1"
    )
    otel_bsp_schedule_delay: int = Field(
        default=5000, ge=1, le=60_000, description="milliseconds between two exports"
    )
    otel_bsp_export_timeout: int = Field(
        default=5000, ge=1, le=60_000, description="milliseconds before an export is given up"
    )
    otel_bsp_max_queue_size: int = Field(
        default=2048, ge=1, le=100_000, description="spans kept while the collector is away"
    )
    metrics_enabled: bool = Field(default=True, description="serve the Prometheus metrics")
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="serve them on this port, not at /metrics"
    )
    prometheus_multiproc_dir: Path | None = Field(
        default=None, description="where the web workers keep their metrics; default a new one"
    )
    sentry_dsn: str | None = Field(default=None, description="where error reports go; unset: none")
    sentry_environment: str = Field(default="production", min_length=1, max_length=64)

    # Before the length checks, so that a blank name is refused rather than kept empty.
    @field_validator(
        "otel_service_name", "otel_resource_attributes", "sentry_environment", mode="before"
    )
    @classmethod
    def _stripped(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value

    @field_validator("otel_resource_attributes")
    @classmethod
    def _key_value_pairs(cls, value: str) -> str:
        for pair in filter(None, (part.strip() for part in value.split(","))):
            if not RESOURCE_ATTRIBUTE.fullmatch(pair):
                raise ValueError("must be key=value pairs separated by commas")
        return value

    # Empty is unset: an empty folder would be the working directory, whose *.db files go.
    @field_validator(
        "otel_exporter_otlp_endpoint", "sentry_dsn", "prometheus_multiproc_dir", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("otel_exporter_otlp_endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL such as http://collector:4318")
        return value.strip().rstrip("/")

    @field_validator("otel_traces_sampler", mode="before")
    @classmethod
    def _lower_case_sampler(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("otel_traces_sampler_arg")
    @classmethod
    def _a_share(cls, value: float) -> float:
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise ValueError("must be a number from 0 to 1, such as 0.1")
        return value

    @field_validator("sentry_dsn")
    @classmethod
    def _sentry_dsn(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from sentry_sdk.utils import BadDsn, Dsn  # the SDK's own reading, imported when needed

        try:
            Dsn(value.strip())
        except BadDsn:
            raise ValueError(
                "must be a Sentry DSN such as https://<key>@<host>/<project id>"
            ) from None
        return value.strip()

    @property
    def ratio_sampler(self) -> bool:
        """Whether the sampler reads OTEL_TRACES_SAMPLER_ARG."""
        return self.otel_traces_sampler in RATIO_SAMPLERS
