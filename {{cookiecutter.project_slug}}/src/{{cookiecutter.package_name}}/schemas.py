"""The shapes of the API: they validate requests, serialise responses and make /openapi.json."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    TypeAdapter,
    field_validator,
    model_validator,
)

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


def document_every_column(schema: dict[str, Any]) -> None:
    """Put in the OpenAPI document the columns of a todo that an option adds, typed as such."""
    for name in ADDED_COLUMNS:
        column = Todo.__table__.columns[name]
        shown = TypeAdapter(column.type.python_type).json_schema()
        if column.nullable:
            shown = {"anyOf": [shown, {"type": "null"}]}
        schema["properties"][name] = shown


class TodoOut(BaseModel):
    """A todo as the API shows it: every column of its row, any an option adds included.

    Its times are written as pydantic writes an aware datetime, in ISO 8601; the database
    sends them in UTC (db.py sets each session's zone), so they end in Z.
    """

    model_config = ConfigDict(
        from_attributes=True, extra="allow", json_schema_extra=document_every_column
    )

    id: int
    title: str
    done: bool
    created_at: AwareDatetime
    updated_at: AwareDatetime

    @model_validator(mode="before")
    @classmethod
    def _with_added_columns(cls, todo: object) -> object:
        # A row read for an answer comes as a dict of its columns (todos.row_dicts). A todo
        # loaded through the ORM (after a write) is read here column by column, as
        # from_attributes would leave out the columns TodoOut does not declare.
        if not ADDED_COLUMNS or isinstance(todo, dict):
            return todo
        return {name: getattr(todo, name) for name in (*DECLARED_COLUMNS, *ADDED_COLUMNS)}


DECLARED_COLUMNS = tuple(TodoOut.model_fields)
# The columns of the todos table that TodoOut does not declare: those the chosen options add.
# (A column's key is SQLAlchemy's subclass of str, which the OpenAPI document cannot copy.)
ADDED_COLUMNS = tuple(
    str(column.key) for column in Todo.__table__.columns if column.key not in DECLARED_COLUMNS
)


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
