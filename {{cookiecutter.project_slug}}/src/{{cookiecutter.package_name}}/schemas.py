"""The shapes of the API: they validate requests, serialise responses and make /openapi.json."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    field_serializer,
    field_validator,
    model_validator,
)
from sqlalchemy import Row

from .models import TITLE_MAX_LENGTH, Todo

# The rules apply to the title as sent, so that the OpenAPI document states them exactly; it is
# stored trimmed. It must hold a character that is not whitespace, and no control character
# anywhere: not NUL, which PostgreSQL cannot store, nor CR, LF or ESC, which would forge lines
# or colours wherever the title is printed. (Controls are spelled out, since regex engines
# disagree on whether \x1c-\x1f and \x85 are whitespace.)
TITLE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
Title = Annotated[
    str,
    StringConstraints(min_length=1, max_length=TITLE_MAX_LENGTH, pattern=TITLE_PATTERN),
    AfterValidator(str.strip),
]

PAGE_SIZE_DEFAULT = 20
PAGE_SIZE_MAX = 100


class Request(BaseModel):
    """Base of request bodies: an unknown field is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class TodoCreate(Request):
    """Body of POST /api/todos."""

    title: Title
    done: StrictBool = False


def offer_no_null(schema: dict[str, Any]) -> None:
    """Keep null out of a field's JSON schema: None stands for "left out"; a null is refused."""
    (not_null,) = [branch for branch in schema.pop("anyOf") if branch != {"type": "null"}]
    schema.update(not_null)
    del schema["default"]


class TodoUpdate(Request):
    """Body of PATCH /api/todos/<id>: only the fields given are changed."""

    title: Title | None = Field(default=None, json_schema_extra=offer_no_null)
    done: StrictBool | None = Field(default=None, json_schema_extra=offer_no_null)

    @field_validator("title", "done", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("must not be null; leave the field out to keep its value")
        return value


class TodoListQuery(BaseModel):
    """Query of GET /api/todos."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=PAGE_SIZE_DEFAULT, ge=1, le=PAGE_SIZE_MAX)
    cursor: str | None = Field(
        default=None,
        max_length=200,
        description=(
            "The next_cursor of the previous page, passed back unchanged. It is opaque: "
            "a string this service did not issue is refused with 422."
        ),
    )


def utc_timestamp(value: datetime) -> str:
    """A time as the API writes it: ISO 8601 in UTC, with a Z."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class TodoOut(BaseModel):
    """A todo as the API shows it: every column of its row, any an option adds included."""

    model_config = ConfigDict(extra="allow")

    id: int
    title: str
    done: bool
    created_at: AwareDatetime
    updated_at: AwareDatetime

    @model_validator(mode="before")
    @classmethod
    def _every_column(cls, todo: object) -> object:
        if isinstance(todo, Row):
            columns = dict(todo._mapping)
        elif isinstance(todo, Todo):
            columns = {
                column.key: getattr(todo, column.key) for column in Todo.__mapper__.column_attrs
            }
        else:
            return todo
        # The columns declared here are checked and written by their field; another (an
        # option's) is shown as it is, a time in the same form as these.
        for name, value in columns.items():
            if name not in cls.model_fields and isinstance(value, datetime):
                columns[name] = utc_timestamp(value)
        return columns

    @field_serializer("created_at", "updated_at")
    def _as_utc(self, value: datetime) -> str:
        return utc_timestamp(value)


class TodoPage(BaseModel):
    """One page of todos, newest first, and the cursor of the next page (null on the last)."""

    items: list[TodoOut]
    next_cursor: str | None


class FieldError(BaseModel):
    """One rejected field of a request."""

    field: str
    message: str
    type: str


class ProblemOut(BaseModel):
    """An RFC 9457 problem document."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


class Health(BaseModel):
    """Body of GET /healthz."""

    status: str


class Readiness(BaseModel):
    """Body of GET /readyz: the overall status and each backing service's."""

    status: str
    checks: dict[str, str]


class VersionOut(BaseModel):
    """Body of GET /version."""

    version: str
    release: str
