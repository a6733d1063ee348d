"""Refuse answers that would produce a broken project, before anything is written.

Cookiecutter renders this file with Jinja and runs the result from a temporary
file, so the answers arrive as a JSON literal below. The checks are plain
functions that the template's tests import from the unrendered file: only
`main()` needs the rendered answers.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
import unicodedata
from collections.abc import Callable, Mapping
from functools import partial

# The choices cookiecutter.json offers. Cookiecutter refuses other values given
# on the command line, but a replay file or an edited context reaches this hook
# unchecked, and the rest of the template only knows how to render these.
SUPPORTED_CHOICES: dict[str, tuple[str, ...]] = {
    "python_version": ("3.11", "3.12", "3.13"),
    "postgres_version": ("15", "16", "17"),
    "worker": ("none", "celery"),
    "observability": ("none", "opentelemetry"),
    "ci": ("github", "gitlab", "none"),
    "kubernetes": ("yes", "no"),
    "license": ("MIT", "Apache-2.0", "BSD-3-Clause", "Proprietary"),
}

# Top-level modules that the baked service, its tests and its tools import, plus
# names its own layout uses. A package with one of these names would hide the
# real module from `import` inside the project. The observability option brings
# opentelemetry, google (protobuf), prometheus_client, sentry_sdk, wrapt, and
# requests with urllib3, certifi, charset_normalizer and idna (the OTLP exporter's).
TAKEN_MODULE_NAMES: frozenset[str] = frozenset(
    {
        "alembic",
        "amqp",
        "annotated_types",
        "app",
        "billiard",
        "blinker",
        "celery",
        "certifi",
        "charset_normalizer",
        "click",
        "conftest",
        "deptry",
        "dotenv",
        "editables",
        "flask",
        "google",
        "greenlet",
        "gunicorn",
        "hatchling",
        "hypothesis",
        "idna",
        "itsdangerous",
        "jinja2",
        "kombu",
        "mako",
        "markupsafe",
        "migrations",
        "mypy",
        "opentelemetry",
        "packaging",
        "pip",
        "pluggy",
        "prometheus_client",
        "psycopg2",
        "pydantic",
        "pydantic_core",
        "pydantic_settings",
        "pytest",
        "pythonjsonlogger",
        "redis",
        "requests",
        "ruff",
        "sentry_sdk",
        "setuptools",
        "sortedcontainers",
        "spectree",
        "sqlalchemy",
        "src",
        "test",
        "tests",
        "typing_extensions",
        "urllib3",
        "uv",
        "vine",
        "werkzeug",
        "wrapt",
    }
)

# Soft keywords of every Python the template supports, whichever Python runs
# this hook: `type` became one in 3.12.
SOFT_KEYWORDS: frozenset[str] = frozenset({"_", "case", "match", "type"}) | frozenset(
    keyword.softkwlist
)

SLUG_PATTERN = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
# Kubernetes names and labels hold at most 63 characters; the manifests add up to 9.
SLUG_MAX_LENGTH = 54
PACKAGE_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")

# The canonical public version scheme of PEP 440 (epoch, release, pre-, post- and
# dev-release, each in its normalized spelling).
VERSION_PATTERN = re.compile(
    r"(?:[1-9][0-9]*!)?"
    r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*"
    r"(?:(?:a|b|rc)(?:0|[1-9][0-9]*))?"
    r"(?:\.post(?:0|[1-9][0-9]*))?"
    r"(?:\.dev(?:0|[1-9][0-9]*))?"
)


class InvalidAnswerError(ValueError):
    """An answer the template cannot turn into a working project."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field


def _first_control_character(text: str) -> str | None:
    """Return the first character that would break a line-oriented file, if any."""
    for character in text:
        if unicodedata.category(character) in {"Cc", "Zl", "Zp"}:
            return character
    return None


def _check_single_line(field: str, value: str) -> None:
    """Refuse newlines and other control characters in a free-text answer."""
    bad = _first_control_character(value)
    if bad is not None:
        raise InvalidAnswerError(
            field,
            f"contains the control character {bad!r}; "
            "use a single line of printable text without tabs or newlines.",
        )


def check_project_name(value: str) -> None:
    """The project name is free text, but it must say something on one line."""
    if not value.strip():
        raise InvalidAnswerError("project_name", "is empty; give a name such as 'My Service'.")
    _check_single_line("project_name", value)


def check_project_slug(value: str) -> None:
    """The slug names the directory, the distribution and the Kubernetes objects."""
    if SLUG_PATTERN.fullmatch(value) is None:
        raise InvalidAnswerError(
            "project_slug",
            f"{value!r} is not accepted; use lowercase ASCII letters and digits "
            "in words joined by single hyphens, starting with a letter, "
            "such as 'my-service'.",
        )
    if len(value) > SLUG_MAX_LENGTH:
        raise InvalidAnswerError(
            "project_slug",
            f"{value!r} has {len(value)} characters; use at most {SLUG_MAX_LENGTH}, "
            "so that Kubernetes names built from it stay within 63.",
        )


def _suggest_package_name(value: str) -> str:
    """Offer a name that passes every package check, built from the refused one."""
    stem = re.sub(r"[^a-z0-9_]+", "_", value.lower()).strip("_")
    if not stem or not stem[0].isalpha():
        stem = "service" + ("_" + stem if stem else "")
    return f"{stem}_service"


def check_package_name(value: str) -> None:
    """The package name must import cleanly and hide no other module."""
    suggestion = _suggest_package_name(value)
    if PACKAGE_PATTERN.fullmatch(value) is None or not value.isidentifier():
        raise InvalidAnswerError(
            "package_name",
            f"{value!r} is not accepted; use lowercase ASCII letters, digits and "
            f"underscores, starting with a letter, such as {suggestion!r}.",
        )
    if keyword.iskeyword(value) or value in SOFT_KEYWORDS:
        raise InvalidAnswerError(
            "package_name",
            f"{value!r} is a Python keyword; choose another name such as {suggestion!r}.",
        )
    if value in sys.stdlib_module_names:
        raise InvalidAnswerError(
            "package_name",
            f"{value!r} shadows the standard library module {value!r}; "
            f"choose another name such as {suggestion!r}.",
        )
    if value in TAKEN_MODULE_NAMES:
        raise InvalidAnswerError(
            "package_name",
            f"{value!r} shadows the {value!r} module the service or its tools "
            f"depend on; choose another name such as {suggestion!r}.",
        )


def check_author_name(value: str) -> None:
    """The author is the copyright holder, so the name must be there."""
    if not value.strip():
        raise InvalidAnswerError(
            "author_name",
            "is empty; give the person or organisation that holds the copyright.",
        )
    _check_single_line("author_name", value)


def check_author_email(value: str) -> None:
    """The address goes into package metadata, which tools parse."""
    if EMAIL_PATTERN.fullmatch(value) is None:
        raise InvalidAnswerError(
            "author_email",
            f"{value!r} does not look like an e-mail address; use one '@', "
            "a dotted domain and no spaces, such as 'you@example.com'.",
        )


def check_description(value: str) -> None:
    """The description is one line of metadata and README text."""
    _check_single_line("description", value)


def check_version(value: str) -> None:
    """The version must be one that packaging tools accept unchanged."""
    if VERSION_PATTERN.fullmatch(value) is None:
        raise InvalidAnswerError(
            "version",
            f"{value!r} is not a canonical PEP 440 version; use a form such as "
            "'0.1.0', '1.0.0rc1', '1.0.0.post1' or '2.0.0.dev3'.",
        )


def check_choice(field: str, value: str) -> None:
    """A choice must be one the template can render."""
    accepted = SUPPORTED_CHOICES[field]
    if value not in accepted:
        raise InvalidAnswerError(
            field,
            f"{value!r} is not supported; choose one of {', '.join(accepted)}.",
        )


CHECKS: dict[str, Callable[[str], None]] = {
    "project_name": check_project_name,
    "project_slug": check_project_slug,
    "package_name": check_package_name,
    "description": check_description,
    "author_name": check_author_name,
    "author_email": check_author_email,
    "version": check_version,
    **{field: partial(check_choice, field) for field in SUPPORTED_CHOICES},
}


def validate(answers: Mapping[str, object]) -> None:
    """Run every check in the order the questions are asked; stop at the first refusal."""
    for field, check in CHECKS.items():
        check(str(answers.get(field, "")))


def main(answers: Mapping[str, object]) -> int:
    """Print one line for the first bad answer and return the exit status."""
    try:
        validate(answers)
    except InvalidAnswerError as refusal:
        print(f"\nERROR: {refusal}\n", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    # Jinja's tojson escapes quotes inside strings and never emits two string
    # tokens side by side, so the rendered JSON cannot close this raw literal early.
    sys.exit(main(json.loads(r"""{{ cookiecutter | tojson }}""")))
