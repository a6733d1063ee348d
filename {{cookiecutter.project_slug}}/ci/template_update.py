"""Propose the template's new changes as a pull (or merge) request: the scheduled update job.

The project records the template it was baked from, and the commit, in `.cruft.json`. This
script runs `cruft update` on a branch of its own; when the template has moved on, it commits
the result, pushes the branch and opens a request for it, or refreshes the one already open.
Where the template and the project changed the same lines, cruft's three-way merge leaves
conflict markers in the file, or a `.rej` file beside it when it cannot merge at all: either
way the result is committed as it is, listed in the request, and the job fails so that
someone looks.

It runs in CI with the platform's own token: on GitHub Actions the job's GITHUB_TOKEN (with
contents and pull-requests write), on GitLab a project access token in TEMPLATE_UPDATE_TOKEN
(GitLab's job token may not open merge requests). Only the standard library is used, and
cruft from the project's environment.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BRANCH = "template-update"
TITLE = "Update from the project template"
CRUFT_FILE = Path(".cruft.json")


class UpdateError(RuntimeError):
    """The update cannot be proposed; the message says why and what to do."""


@dataclass(frozen=True)
class Platform:
    """Where the request is opened, and how the job proves who it is."""

    name: str
    api_url: str
    token: str
    base_branch: str
    push_user: str
    bot_name: str
    bot_email: str
    project: str

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> Platform:
        """The platform this job runs on, from the variables its runner sets."""
        if environment.get("GITHUB_ACTIONS") == "true":
            return cls(
                name="github",
                api_url=environment.get("GITHUB_API_URL", "https://api.github.com"),
                token=required(environment, "GITHUB_TOKEN"),
                base_branch=required(environment, "GITHUB_REF_NAME"),
                push_user="x-access-token",
                bot_name="github-actions[bot]",
                bot_email="41898282+github-actions[bot]@users.noreply.github.com",
                project=required(environment, "GITHUB_REPOSITORY"),
            )
        if environment.get("GITLAB_CI") == "true":
            return cls(
                name="gitlab",
                api_url=required(environment, "CI_API_V4_URL"),
                token=required(environment, "TEMPLATE_UPDATE_TOKEN"),
                base_branch=required(environment, "CI_DEFAULT_BRANCH"),
                push_user="oauth2",
                bot_name="template update",
                bot_email="template-update@noreply.invalid",
                project=required(environment, "CI_PROJECT_ID"),
            )
        raise UpdateError(
            "neither GITHUB_ACTIONS nor GITLAB_CI is 'true': run this in the project's CI, "
            "or run `cruft update` by hand"
        )

    def api(self, method: str, path: str, payload: Mapping[str, object] | None = None) -> Any:
        """Call the platform's REST API and return the decoded JSON answer."""
        headers = {"Accept": "application/json", "User-Agent": "template-update"}
        if self.name == "github":
            headers["Authorization"] = f"Bearer {self.token}"
            headers["X-GitHub-Api-Version"] = "2022-11-28"
        else:
            headers["PRIVATE-TOKEN"] = self.token
        data = None
        if payload is not None:
            data = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(
            self.api_url.rstrip("/") + path, data=data, headers=headers, method=method
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def propose(self, body: str) -> str:
        """Open the request for BRANCH, or refresh the open one; its address."""
        if self.name == "github":
            owner = self.project.split("/")[0]
            query = urllib.parse.urlencode({"state": "open", "head": f"{owner}:{BRANCH}"})
            pulls = f"/repos/{self.project}/pulls"
            open_requests = self.api("GET", f"{pulls}?{query}")
            if open_requests:
                number = open_requests[0]["number"]
                answer = self.api("PATCH", f"{pulls}/{number}", {"title": TITLE, "body": body})
            else:
                answer = self.api(
                    "POST",
                    pulls,
                    {"title": TITLE, "head": BRANCH, "base": self.base_branch, "body": body},
                )
            return str(answer["html_url"])
        project = urllib.parse.quote(self.project, safe="")
        query = urllib.parse.urlencode({"state": "opened", "source_branch": BRANCH})
        requests = f"/projects/{project}/merge_requests"
        open_requests = self.api("GET", f"{requests}?{query}")
        if open_requests:
            iid = open_requests[0]["iid"]
            answer = self.api("PUT", f"{requests}/{iid}", {"title": TITLE, "description": body})
        else:
            answer = self.api(
                "POST",
                requests,
                {
                    "title": TITLE,
                    "source_branch": BRANCH,
                    "target_branch": self.base_branch,
                    "description": body,
                    "remove_source_branch": True,
                },
            )
        return str(answer["web_url"])


def required(environment: Mapping[str, str], name: str) -> str:
    """A variable the job cannot do without."""
    value = environment.get(name, "")
    if not value:
        raise UpdateError(f"{name} is not set; the update job needs it (see the README)")
    return value


def git(*arguments: str) -> str:
    """Run git in the project and return what it printed; fail with its message."""
    result = subprocess.run(["git", *arguments], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise UpdateError(f"git {' '.join(arguments)} failed: {result.stderr.strip()}")
    return result.stdout


def template_commit() -> str:
    """The template commit the project is at, as `.cruft.json` records it."""
    if not CRUFT_FILE.is_file():
        raise UpdateError(
            f"{CRUFT_FILE} is missing: link the project to its template once with "
            "`cruft link <template address>` and commit the file"
        )
    return str(json.loads(CRUFT_FILE.read_text(encoding="utf-8"))["commit"])


def with_token(platform: Platform) -> list[str]:
    """git options that authenticate one command to origin with the job's token.

    Given per command, so the token is never written to the repository's configuration.
    """
    credentials = base64.b64encode(f"{platform.push_user}:{platform.token}".encode()).decode()
    return ["-c", f"http.extraHeader=Authorization: Basic {credentials}"]


def remote_branch_tree(platform: Platform) -> str | None:
    """The tree of BRANCH on origin, or None when there is no such branch."""
    listed = git(*with_token(platform), "ls-remote", "--heads", "origin", BRANCH).split()
    if not listed:
        return None
    git(*with_token(platform), "fetch", "--quiet", "origin", listed[0])
    return git("rev-parse", listed[0] + "^{tree}").strip()


def request_body(template: str, before: str, after: str, changed: str, conflicts: list[str]) -> str:
    """What the request tells its reviewer, in Markdown."""
    lines = [
        f"The template `{template}` has moved from `{before[:12]}` to `{after[:12]}`.",
        "This branch holds `cruft update`'s result; review it as any change.",
        "",
        "Files changed:",
        "",
        "```",
        changed.rstrip(),
        "```",
    ]
    if conflicts:
        lines += [
            "",
            "**Conflicts.** The template and the project changed the same lines. On this branch,",
            "resolve the conflict markers in these files, or apply the hunks of each `.rej`",
            "file by hand and delete it:",
            "",
            *(f"- `{conflict}`" for conflict in conflicts),
        ]
    return "\n".join(lines) + "\n"


def update(platform: Platform) -> int:
    """Run the update on BRANCH and propose it; the job's exit status."""
    before = template_commit()
    git("switch", "--quiet", "--force-create", BRANCH)
    cruft = subprocess.run(
        [sys.executable, "-m", "cruft", "update", "--skip-apply-ask", "--allow-untracked-files"],
        capture_output=True,
        text=True,
        check=False,
    )
    if cruft.returncode != 0:
        raise UpdateError(f"cruft update failed:\n{cruft.stdout}{cruft.stderr}")
    if not git("status", "--porcelain"):
        print("The project is up to date with its template: nothing to propose.")
        return 0
    after = template_commit()
    merge_conflicts = git("diff", "--name-only", "--diff-filter=U").split()
    git("add", "--all")
    identity = ["-c", f"user.name={platform.bot_name}", "-c", f"user.email={platform.bot_email}"]
    git(*identity, "commit", "--quiet", "--message", f"{TITLE} ({after[:12]})")
    conflicts = sorted({*merge_conflicts, *git("ls-files", "*.rej").split()})
    if remote_branch_tree(platform) == git("rev-parse", "HEAD^{tree}").strip():
        print(f"The open request's branch {BRANCH} already holds these changes.")
    else:
        git(
            *with_token(platform),
            "push",
            "--quiet",
            "--force",
            "origin",
            f"HEAD:refs/heads/{BRANCH}",
        )
        changed = git("diff", "--name-status", "HEAD~1..HEAD")
        template = json.loads(CRUFT_FILE.read_text(encoding="utf-8"))["template"]
        address = platform.propose(request_body(template, before, after, changed, conflicts))
        print(f"Proposed the template's changes: {address}")
    if conflicts:
        print("Conflicts to resolve on the branch:", *conflicts, sep="\n  ", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    """Entry point: the exit status of the job."""
    try:
        return update(Platform.from_environment(os.environ))
    except UpdateError as error:
        print(f"template update: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
