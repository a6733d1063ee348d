"""Medians and Markdown: how the harness turns runs into the report."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence


def median(values: Iterable[float]) -> float:
    """The median of the values, NaN when there are none."""
    data = [value for value in values if not math.isnan(value)]
    return statistics.median(data) if data else float("nan")


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN when it is undefined."""
    if not denominator or math.isnan(denominator) or math.isnan(numerator):
        return float("nan")
    return numerator / denominator


def fmt(value: float | int | None, digits: int = 1) -> str:
    """A number for a table cell: fixed digits, thousands separated; '-' when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    numeric_from: int = 1,
    numeric_to: int | None = None,
) -> str:
    """A Markdown table; columns numeric_from..numeric_to (exclusive) are right-aligned."""
    end = len(headers) if numeric_to is None else numeric_to
    align = ["---:" if numeric_from <= i < end else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def spread(values: Sequence[float], digits: int = 1) -> list[str]:
    """Median, min, max and count of a series, formatted for a table."""
    if not values:
        return ["-", "-", "-", "0"]
    return [
        fmt(median(values), digits),
        fmt(min(values), digits),
        fmt(max(values), digits),
        str(len(values)),
    ]


def span(values: Sequence[float], digits: int = 2) -> str:
    """'min to max' of a series, for a table cell."""
    return f"{fmt(min(values), digits)} to {fmt(max(values), digits)}" if values else "-"


def incident_lines(incidents: Sequence[str]) -> list[str]:
    """The report's list of failed runs, each discarded and redone; nothing when none failed."""
    if not incidents:
        return []
    heading = "**Incidents** (each failed run was discarded and redone on a fresh process):"
    return [heading, "", *(f"- {incident}" for incident in incidents), ""]
