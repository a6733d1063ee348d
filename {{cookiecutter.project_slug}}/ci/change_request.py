"""Propose a change as a pull (or merge) request: the part the CI's scheduled jobs share.

A job runs one command on a branch of its own. When the command changed nothing, the job ends
there. Otherwise the result is committed, the branch pushed, and a request opened for it, or
the one already open refreshed; the same result twice pushes and asks nothing. Conflicts the
command left (merge conflict markers, or `.rej` files) are committed as they are, listed in
the request, and fail the job so that someone looks.

It runs with the platform's own token: on GitHub Actions the job's GITHUB_TOKEN (contents and
pull-requests write), on GitLab a project access token in TEMPLATE_UPDATE_TOKEN (GitLab's job
token may not open merge requests). Only the standard library is used.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class ChangeRequestError(RuntimeError):
    """The change cannot be proposed; the message says why and what to do."""


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
        raise ChangeRequestError(
            "neither GITHUB_ACTIONS nor GITLAB_CI is 'true': this runs in the project's CI"
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

    def propose(self, branch: str, title: str, body: str) -> str:
        """Open the request for branch, or refresh the open one; its address."""
        if self.name == "github":
            owner = self.project.split("/")[0]
            query = urllib.parse.urlencode({"state": "open", "head": f"{owner}:{branch}"})
            pulls = f"/repos/{self.project}/pulls"
            open_requests = self.api("GET", f"{pulls}?{query}")
            if open_requests:
                number = open_requests[0]["number"]
                answer = self.api("PATCH", f"{pulls}/{number}", {"title": title, "body": body})
            else:
                answer = self.api(
                    "POST",
                    pulls,
                    {"title": title, "head": branch, "base": self.base_branch, "body": body},
                )
            return str(answer["html_url"])
        project = urllib.parse.quote(self.project, safe="")
        query = urllib.parse.urlencode({"state": "opened", "source_branch": branch})
        requests = f"/projects/{project}/merge_requests"
        open_requests = self.api("GET", f"{requests}?{query}")
        if open_requests:
            iid = open_requests[0]["iid"]
            answer = self.api("PUT", f"{requests}/{iid}", {"title": title, "description": body})
        else:
            answer = self.api(
                "POST",
                requests,
                {
                    "title": title,
                    "source_branch": branch,
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
        raise ChangeRequestError(f"{name} is not set; the job needs it (see the README)")
    return value


def git(*arguments: str) -> str:
    """Run git in the project and return what it printed; fail with its message."""
    result = subprocess.run(["git", *arguments], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ChangeRequestError(f"git {' '.join(arguments)} failed: {result.stderr.strip()}")
    return result.stdout


def with_token(platform: Platform) -> list[str]:
    """git options that authenticate one command to origin with the job's token.

    Given per command, so the token is never written to the repository's configuration.
    """
    credentials = base64.b64encode(f"{platform.push_user}:{platform.token}".encode()).decode()
    return ["-c", f"http.extraHeader=Authorization: Basic {credentials}"]


def remote_branch_tree(platform: Platform, branch: str) -> str | None:
    """The tree of the branch on origin, or None when there is no such branch."""
    listed = git(*with_token(platform), "ls-remote", "--heads", "origin", branch).split()
    if not listed:
        return None
    git(*with_token(platform), "fetch", "--quiet", "origin", listed[0])
    return git("rev-parse", listed[0] + "^{tree}").strip()


def conflicts_section(conflicts: Sequence[str]) -> list[str]:
    """The request's lines that ask the reviewer to resolve what did not apply."""
    if not conflicts:
        return []
    return [
        "",
        "**Conflicts.** Both sides changed the same lines. On this branch, resolve the",
        "conflict markers in these files, or apply the hunks of each `.rej` file by hand and",
        "delete it:",
        "",
        *(f"- `{conflict}`" for conflict in conflicts),
    ]


@dataclass(frozen=True)
class Job:
    """One scheduled job: its branch, its request's title, and the command that makes the change."""

    branch: str
    title: str
    command: Sequence[str]
    # What the job says when the command changed nothing.
    unchanged: str
    # Markdown that opens the request, from the commit the branch started at.
    describe: Callable[[str], list[str]]


def propose(platform: Platform, job: Job) -> int:
    """Run the job's command on its branch and propose the result; the job's exit status."""
    start = git("rev-parse", "HEAD").strip()
    git("switch", "--quiet", "--force-create", job.branch)
    ran = subprocess.run(job.command, capture_output=True, text=True, check=False)
    if ran.returncode != 0:
        raise ChangeRequestError(f"{' '.join(job.command)} failed:\n{ran.stdout}{ran.stderr}")
    if not git("status", "--porcelain"):
        print(job.unchanged)
        return 0
    merge_conflicts = git("diff", "--name-only", "--diff-filter=U").split()
    git("add", "--all")
    identity = ["-c", f"user.name={platform.bot_name}", "-c", f"user.email={platform.bot_email}"]
    git(*identity, "commit", "--quiet", "--message", job.title)
    conflicts = sorted({*merge_conflicts, *git("ls-files", "*.rej").split()})
    if remote_branch_tree(platform, job.branch) == git("rev-parse", "HEAD^{tree}").strip():
        print(f"The open request's branch {job.branch} already holds these changes.")
    else:
        git(
            *with_token(platform),
            "push",
            "--quiet",
            "--force",
            "origin",
            f"HEAD:refs/heads/{job.branch}",
        )
        changed = git("diff", "--name-status", f"{start}..HEAD").rstrip()
        body = [
            *job.describe(start),
            "",
            "Files changed:",
            "",
            "```",
            changed,
            "```",
            *conflicts_section(conflicts),
        ]
        address = platform.propose(job.branch, job.title, "\n".join(body) + "\n")
        print(f"Proposed: {address}")
    if conflicts:
        print("Conflicts to resolve on the branch:", *conflicts, sep="\n  ", file=sys.stderr)
        return 1
    return 0


def run_job(job: Job, environment: Mapping[str, str], name: str) -> int:
    """Run a job where the CI runs it; its exit status, with a one-line reason on failure."""
    try:
        return propose(Platform.from_environment(environment), job)
    except ChangeRequestError as error:
        print(f"{name}: {error}", file=sys.stderr)
        return 2
