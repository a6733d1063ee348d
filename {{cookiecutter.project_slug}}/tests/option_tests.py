"""What the options chosen for this project add to the tests every project has.

An option's test plugin (tests/<option>/plugin.py, which conftest.py loads) registers an
OptionTests with add_option_tests, so that no module shared by every project names the option.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class OptionTests:
    """What an option chosen for this project adds to the tests of the whole service."""

    # Test values of the variables without which no process starts once the option is in.
    environment: Mapping[str, str]
    # Those variables again, each secret carrying the given (percent-encoded) password.
    with_password: Callable[[str], Mapping[str, str]]
    process_types: frozenset[str] = field(default_factory=frozenset)
    # Requests that name a todo by its id, as b"METHOD /path/%s".
    todo_routes: tuple[bytes, ...] = ()


OPTION_TESTS: list[OptionTests] = []


def add_option_tests(option: OptionTests) -> None:
    """Make an option's variables, processes and routes part of every test that lists them."""
    OPTION_TESTS.append(option)


def option_environment() -> dict[str, str]:
    """Test values of the variables the chosen options require."""
    return {name: value for option in OPTION_TESTS for name, value in option.environment.items()}
