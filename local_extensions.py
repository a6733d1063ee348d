"""Jinja filters for the template: values from the questions, made safe for each file type."""

from __future__ import annotations

import re

from cookiecutter.utils import simple_filter

MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|])")


@simple_filter
def markdown_text(value: str) -> str:
    """Escape a free-text answer so Markdown shows it literally."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", value)
