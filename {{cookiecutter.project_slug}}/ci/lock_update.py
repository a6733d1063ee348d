"""The weekly lock update: the newest releases pyproject.toml allows, as a pull request.

Dependabot cannot regenerate these locks: it reads only requirements files compiled from a
`.in` file beside them. So this job runs `make upgrade`, where uv re-resolves both locks within
pyproject.toml's ranges, taking only releases at least a week old, and proposes the result on
the branch `lock-update`; see `change_request.py` for how.

Run by the CI as `python -m ci.lock_update`, with uv on the PATH.
"""

from __future__ import annotations

import os
import re
import sys

from ci.change_request import Job, git, run_job

# A pin in a lock's diff: `+flask==3.1.3 \` or `-tzdata==2026.6 ; sys_platform == 'win32' \`.
PIN = re.compile(r"^(?P<sign>[-+])(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)")


def version_changes(start: str) -> list[str]:
    """A Markdown table of the packages whose locked version changed since start."""
    before: dict[str, str] = {}
    after: dict[str, str] = {}
    for line in git("diff", "--unified=0", f"{start}..HEAD", "--", "*.lock").splitlines():
        pin = PIN.match(line)
        if pin:
            side = before if pin["sign"] == "-" else after
            side[pin["name"]] = pin["version"]
    rows = [
        f"| {name} | {before.get(name, 'not locked')} | {after.get(name, 'not locked')} |"
        for name in sorted(before.keys() | after.keys())
        if before.get(name) != after.get(name)
    ]
    return ["| package | was | now |", "|---|---|---|", *rows] if rows else []


def describe(start: str) -> list[str]:
    """What moved, for the top of the request."""
    return [
        "`make upgrade` re-resolved the locks: the newest releases that pyproject.toml's",
        "ranges allow and that are at least a week old.",
        "",
        *version_changes(start),
    ]


UPGRADE = Job(
    branch="lock-update",
    title="Update the locked dependencies",
    command=["make", "upgrade"],
    unchanged="The locks are up to date: nothing to propose.",
    describe=describe,
)


if __name__ == "__main__":
    sys.exit(run_job(UPGRADE, os.environ, "lock update"))
