"""Lint the SQL of each migration for locks that would stop the running service (`make lint`).

Alembic's offline mode writes the SQL a migration would run, with no database; squawk reads
it and names each hazard: a NOT NULL column without a default, an index built without
CONCURRENTLY, a strong lock taken without a lock_timeout. Each migration is linted on its
own, as a release that brings it alone would run it, so every finding names its migration.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import Script, ScriptDirectory

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SQUAWK_CONFIG = PROJECT_ROOT / ".squawk.toml"
# squawk-cli installs its binary beside this environment's other commands.
SQUAWK = Path(sysconfig.get_path("scripts")) / "squawk"
# Alembic marks where each revision's SQL starts: "-- Running upgrade 0001 -> 0002".
REVISION_MARK = re.compile(r"^-- Running upgrade .*-> (\S+)$")


@dataclass(frozen=True)
class Finding:
    """One hazard squawk found in one migration's SQL."""

    migration: Script
    rule: str
    message: str
    statement: str

    def __str__(self) -> str:
        path = Path(self.migration.path).resolve()
        shown = path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path
        return (
            f"{shown} (revision {self.migration.revision}): {self.rule}: {self.message}\n"
            f"    {self.statement}\n"
            f"    https://squawkhq.com/docs/{self.rule}"
        )


def upgrade_sql(config: Config, migration: Script) -> str:
    """The SQL that upgrading to this migration from its parent runs (alembic upgrade --sql)."""
    parent = migration.down_revision
    if isinstance(parent, tuple | list):
        parent = parent[0]  # a merge: upgraded from its first parent
    revisions = f"{parent}:{migration.revision}" if parent else migration.revision
    printed, config.output_buffer = config.output_buffer, io.StringIO()
    try:
        command.upgrade(config, revisions, sql=True)
        return config.output_buffer.getvalue()
    finally:
        config.output_buffer = printed


def squawk(sql: str, name: str) -> list[dict[str, object]]:
    """squawk's findings on some SQL, as its JSON reporter gives them."""
    if not SQUAWK.is_file():
        sys.exit(f"{SQUAWK} is missing: run `make install` to install the dev tools")
    result = subprocess.run(  # noqa: S603 - this environment's squawk, fixed arguments
        [SQUAWK, "--config", SQUAWK_CONFIG, "--reporter", "json", "--stdin-filepath", name],
        input=sql,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode not in (0, 1) or not result.stdout.strip():
        sys.exit(f"squawk failed on {name}:\n{result.stderr}")
    findings: list[dict[str, object]] = json.loads(result.stdout)
    return findings


def lint_migration(config: Config, migration: Script) -> list[Finding]:
    """The hazards in one migration's upgrade."""
    sql = upgrade_sql(config, migration)
    lines = sql.splitlines()
    findings = []
    for found in squawk(sql, Path(migration.path).name):
        line = int(str(found["line"]))
        marks = (REVISION_MARK.match(text) for text in reversed(lines[: line + 1]))
        revision = next((mark.group(1) for mark in marks if mark), migration.revision)
        # A merge's upgrade replays the other branch too: those findings are its migrations'.
        if revision == migration.revision:
            statement = lines[line].strip()
            findings.append(
                Finding(migration, str(found["rule_name"]), str(found["message"]), statement)
            )
    return findings


def lint_migrations(config: Config) -> list[Finding]:
    """The hazards in every migration, oldest first."""
    migrations = reversed(list(ScriptDirectory.from_config(config).walk_revisions()))
    return [finding for migration in migrations for finding in lint_migration(config, migration)]


def main(config: Config | None = None) -> int:
    """Print each finding with its migration and rule; fail if there is any."""
    findings = lint_migrations(config or Config(PROJECT_ROOT / "alembic.ini"))
    for finding in findings:
        print(finding)
    if findings:
        print(
            f"\n{len(findings)} locking hazard(s) in the migrations. Fix the migration (see "
            "migrations/script.py.mako), or switch off a rule that does not apply in "
            ".squawk.toml with the reason beside it. A migration's SQL: "
            ".venv/bin/alembic upgrade <parent>:<revision> --sql"
        )
        return 1
    print("squawk: no locking hazard in the migrations")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
