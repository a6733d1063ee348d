"""The lock files and the pins they hold."""

from __future__ import annotations

import re
from pathlib import Path

from packaging.requirements import Requirement

LOCKS = ("requirements.lock", "requirements-dev.lock")
# A pin opens a line of the lock; its hashes follow on continuation lines.
PINNED_LINE = re.compile(r"^([A-Za-z0-9][^\\\n]*==[^\\\n]*?)\s*\\?$", re.MULTILINE)


def lock_pins(lock: Path) -> list[Requirement]:
    """Every pin of a lock, each with its environment marker, if any."""
    return [Requirement(line) for line in PINNED_LINE.findall(lock.read_text())]
