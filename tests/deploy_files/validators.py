"""The validators, each run once per distinct input.

hadolint, check-jsonschema's built-in `vendor.*` schemas, kubernetes-validate --strict
against the newest Kubernetes it ships, zizmor on the GitHub workflows, and `kubectl
kustomize` where kubectl is installed: all offline, all but kubectl installed beside pytest
by `make install`.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes_validate.utils import latest_version

from .baked_files import COMBINATIONS, Baked, Bakery

TOOLS_DIR = Path(sys.executable).parent
KUBERNETES_VERSION = latest_version()


def tool(name: str) -> str:
    """A validator installed beside pytest by `make install`."""
    path = TOOLS_DIR / name
    if not path.exists():
        pytest.fail(
            f"{name} is not installed in {TOOLS_DIR}: run `make install` "
            "(it comes from requirements-dev.lock)",
            pytrace=False,
        )
    return str(path)


def check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    """Validate one file against one of check-jsonschema's built-in schemas."""
    return subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def content_digest(*paths: Path, root: Path | None = None) -> str:
    """A digest of the files' names (relative to root, else bare) and contents."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path.relative_to(root) if root else path.name).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


class Validators:
    """Runs each validator once per distinct set of file contents."""

    def __init__(self, bakery: Bakery) -> None:
        self._bakery = bakery
        self._results: dict[tuple[Any, ...], subprocess.CompletedProcess[str]] = {}
        self._schema_failures: dict[tuple[str, str], set[str]] = {}

    def run(self, command: list[str], files: list[Path]) -> subprocess.CompletedProcess[str]:
        """Run command with the files appended, or return its result for the same contents."""
        key = (tuple(command), content_digest(*files))
        if key not in self._results:
            self._results[key] = subprocess.run(
                [*command, *(str(path) for path in files)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        return self._results[key]

    def schema(self, schema: str, baked: Baked, relative: str) -> None:
        """Fail with check-jsonschema's words if the baked file breaks the built-in schema.

        The first call checks that file of every combination in one run, since most of
        the time goes into starting the tool and compiling the schema.
        """
        key = (schema, relative)
        command = [tool("check-jsonschema"), "--builtin-schema", schema]
        if key not in self._schema_failures:
            files: dict[str, Path] = {}
            for answers in COMBINATIONS:
                path = self._bakery(answers).path / relative
                if path.is_file():
                    files.setdefault(content_digest(path), path)
            result = subprocess.run(
                [*command, "--output-format", "json", *map(str, files.values())],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            try:
                report = json.loads(result.stdout)
            except ValueError:
                pytest.fail(
                    f"check-jsonschema did not run:\n{result.stdout}{result.stderr}", pytrace=False
                )
            failed = {
                e["filename"] for e in report.get("errors", []) + report.get("parse_errors", [])
            }
            if result.returncode != 0 and not failed:
                pytest.fail(
                    f"check-jsonschema failed:\n{result.stdout}{result.stderr}", pytrace=False
                )
            self._schema_failures[key] = {d for d, path in files.items() if str(path) in failed}
        if content_digest(baked.path / relative) in self._schema_failures[key]:
            # Again on this file alone, for the validator's readable report.
            require_pass(self.run(command, [baked.path / relative]), f"{schema} on {relative}")

    def kustomize(self, kubectl: str, directory: Path, deploy_root: Path) -> str:
        """`kubectl kustomize directory`, once per distinct deploy tree."""
        files = sorted(p for p in deploy_root.rglob("*") if p.is_file())
        key = (
            "kustomize",
            str(directory.relative_to(deploy_root)),
            content_digest(*files, root=deploy_root),
        )
        if key not in self._results:
            self._results[key] = subprocess.run(
                [kubectl, "kustomize", str(directory)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        rendered = self._results[key]
        if rendered.returncode != 0:
            pytest.fail(
                f"kubectl kustomize {directory} failed:\n{rendered.stderr}{rendered.stdout}",
                pytrace=False,
            )
        return rendered.stdout


def require_pass(result: subprocess.CompletedProcess[str], what: str) -> None:
    """Fail with the validator's own words if it did not pass."""
    if result.returncode != 0:
        pytest.fail(f"{what} failed:\n{result.stdout}{result.stderr}", pytrace=False)


def kubernetes_validate(validators: Validators, files: list[Path]) -> str:
    """Validate manifests with --strict; a resource without a schema fails too."""
    command = [tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION]
    result = validators.run(command, files)
    require_pass(result, f"kubernetes-validate --strict -k {KUBERNETES_VERSION}")
    problems = [line for line in result.stdout.splitlines() if not line.startswith("INFO ")]
    if problems:
        pytest.fail("kubernetes-validate:\n" + "\n".join(problems), pytrace=False)
    return result.stdout


# A workflow step's action: owner/name, the ref after @, and the rest of the line. zizmor
# checks that the ref is a commit; the rest should name the release it is, for the reader.
USES = re.compile(r"^\s*(?:- )?uses: ([^@\s]+)@(\S+)(.*)$", re.MULTILINE)


def zizmor() -> list[str]:
    """zizmor offline, with its default persona, reporting what is above "low".

    No configuration is read, so that no zizmor.yml nearby can switch an audit off.
    """
    return [tool("zizmor"), "--offline", "--no-config", "--color=never", "--min-severity=medium"]


def require_no_zizmor_findings(result: subprocess.CompletedProcess[str], what: str) -> None:
    """Fail with zizmor's report if it found anything (or did not run)."""
    if result.returncode != 0 or "No findings to report" not in result.stdout:
        pytest.fail(
            f"zizmor finds problems above low in {what}; fix each as its audit's "
            f"documentation says:\n{result.stdout}{result.stderr}",
            pytrace=False,
        )
