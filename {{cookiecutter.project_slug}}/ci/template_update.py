"""The weekly template update: the template's new changes as a pull (or merge) request.

The project records the template it was baked from, and the commit, in `.cruft.json`. The job
runs `cruft update` (three-way, so the project's own edits stay) on the branch
`template-update` and proposes the result; see `change_request.py` for how.

Run by the CI as `python -m ci.template_update`, with cruft from the project's environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ci.change_request import Job, run_job

CRUFT_FILE = Path(".cruft.json")


def template_commit(revision: str) -> tuple[str, str]:
    """The template's address and commit that `.cruft.json` records at a revision."""
    recorded = subprocess.run(
        ["git", "show", f"{revision}:{CRUFT_FILE}"], capture_output=True, text=True, check=True
    )
    state = json.loads(recorded.stdout)
    return str(state["template"]), str(state["commit"])


def describe(start: str) -> list[str]:
    """Where the template moved, for the top of the request."""
    template, before = template_commit(start)
    _, after = template_commit("HEAD")
    return [
        f"The template `{template}` has moved from `{before[:12]}` to `{after[:12]}`.",
        "This branch holds `cruft update`'s result; review it as any change.",
    ]


UPDATE = Job(
    branch="template-update",
    title="Update from the project template",
    command=[
        sys.executable,
        "-m",
        "cruft",
        "update",
        "--skip-apply-ask",
        "--allow-untracked-files",
    ],
    unchanged="The project is up to date with its template: nothing to propose.",
    describe=describe,
)


def main() -> int:
    """Entry point: the exit status of the job."""
    if not CRUFT_FILE.is_file():
        print(
            f"template update: {CRUFT_FILE} is missing: link the project to its template once "
            "with `cruft link <template address>` and commit the file",
            file=sys.stderr,
        )
        return 2
    return run_job(UPDATE, os.environ, "template update")


if __name__ == "__main__":
    sys.exit(main())
