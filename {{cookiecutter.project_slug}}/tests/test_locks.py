"""The locks are current: each dependency pyproject.toml declares is pinned in them, at a version
its range allows. A dependency added or a range changed without `make lock` fails here, in
`make test` and in the pre-commit hook.

It reads files only, so it needs no network and no resolver. A pin left over from a dependency
since removed passes: `make lock` drops it the next time it runs.
"""

from __future__ import annotations

import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .locks import lock_pins
from .processes import PROJECT_ROOT

PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
RUNTIME: list[str] = PYPROJECT["project"]["dependencies"]
# requirements-dev.lock holds the runtime dependencies and the dev group's.
DEVELOPMENT: list[str] = [*RUNTIME, *PYPROJECT["dependency-groups"]["dev"]]


@pytest.mark.parametrize(
    ("lock", "declared"),
    [("requirements.lock", RUNTIME), ("requirements-dev.lock", DEVELOPMENT)],
    ids=["requirements.lock", "requirements-dev.lock"],
)
def test_the_lock_pins_every_declared_dependency_within_its_range(
    lock: str, declared: list[str]
) -> None:
    pinned: dict[str, list[str]] = {}
    for pin in lock_pins(PROJECT_ROOT / lock):
        (specifier,) = pin.specifier
        pinned.setdefault(canonicalize_name(pin.name), []).append(specifier.version)
    problems = []
    for line in declared:
        requirement = Requirement(line)
        versions = pinned.get(canonicalize_name(requirement.name), [])
        if not versions:
            problems.append(f"{requirement} is declared but not pinned")
        problems += [
            f"{requirement} is declared but {requirement.name}=={version} is pinned"
            for version in versions
            if not requirement.specifier.contains(version, prereleases=True)
        ]
    assert not problems, f"{lock} is behind pyproject.toml; run `make lock`:\n" + "\n".join(
        problems
    )
