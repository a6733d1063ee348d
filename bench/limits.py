"""The baked service against the least one could write (issues 10 and 24): throughput against
the baselines, start-up against the SQLAlchemy app, memory against bare Flask, each as a
ratio with its target. The service as it ships (LOG_LEVEL=INFO) is held to the baselines
that log each request too; the same figures at LOG_LEVEL=WARNING, against the baselines that
log nothing, stand beside them."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .plan import Plan
from .report import fmt, median, ratio, span, table

Compare = Callable[[float, float], bool]


@dataclass(frozen=True)
class Limit:
    """A figure of the baked service, what it is compared with, and the target of the ratio
    (none for a figure given for what it explains)."""

    figure: str
    limit: str
    compare: Compare | None = None
    bound: float = float("nan")


# (limit, baked run key, baseline name): the baked run at INFO is compared with the
# baseline's "+log" run, the WARNING twin's with the baseline's unlogged one (web.py).
THROUGHPUT: list[tuple[Limit, str, str]] = [
    (Limit("`GET /healthz`, req/s", "bare Flask +log", operator.ge, 0.95), "healthz", "bare"),
    (
        Limit("`GET /api/todos/<id>`, req/s", "SQLAlchemy app +log", operator.ge, 0.97),
        "get",
        "sqlalchemy",
    ),
    (
        Limit("`GET /api/todos/<id>`, req/s", "pooled psycopg2 +log", operator.ge, 0.80),
        "get",
        "pooled",
    ),
    (
        Limit("`GET /api/todos` first page, req/s", "SQLAlchemy app +log", operator.ge, 0.90),
        "first",
        "sqlalchemy",
    ),
]
STARTUP = Limit("start → first 200, s", "SQLAlchemy app +log", operator.le, 1.5)
STARTUP_BARE = Limit("start → first 200, s", "bare Flask +log")
PSS = Limit("PSS per worker, MiB", "bare Flask +log", operator.le, 1.25)
USS = Limit("private memory (USS) per worker, MiB", "bare Flask +log")
PEAK = Limit("peak RSS (VmHWM, shared pages in full) per worker, MiB", "bare Flask +log")
HEADERS = ["figure", "limit", "baked", "limit's", "ratio", "range", "target", "met"]
WARNING_HEADERS = ["baked at WARNING", "unlogged limit's", "ratio at WARNING", "range at WARNING"]
NOT_MEASURED = ["-"] * len(WARNING_HEADERS)


def verdict(limit: Limit, value: float) -> list[str]:
    """The target and whether the ratio meets it; '-' twice for a figure without one."""
    if limit.compare is None:
        return ["-", "-"]
    sign = "≥" if limit.compare is operator.ge else "≤"
    met = "-" if value != value else "yes" if limit.compare(value, limit.bound) else "**no**"
    return [f"{sign} {limit.bound:.2f}", met]


# A row's cells for one side (baked median, limit's median, ratio, range) and the ratio.
Cells = tuple[list[str], float]


def paired_cells(baked: Sequence[float], base: Sequence[float], digits: int) -> Cells:
    """Baked median, limit's median, the ratio of the medians, and the min to max of the
    ratios of runs from the same round."""
    same_round = [ratio(a, b) for a, b in zip(baked, base, strict=False)]
    value = ratio(median(baked), median(base))
    cells = [fmt(median(baked), digits), fmt(median(base), digits), fmt(value, 2)]
    return [*cells, span(same_round)], value


def spread_cells(baked: Sequence[float], base: Sequence[float]) -> Cells:
    """As paired_cells for values with no pairing (memory per worker): the range goes from
    the smallest baked over the largest limit's to the largest over the smallest."""
    if not baked or not base:
        return ["-"] * 4, float("nan")
    extremes = [ratio(min(baked), max(base)), ratio(max(baked), min(base))]
    value = ratio(median(baked), median(base))
    return [fmt(median(baked), 1), fmt(median(base), 1), fmt(value, 2), span(extremes)], value


def row(limit: Limit, info: Cells, warning: list[str]) -> list[str]:
    """One row of the table: the cells at INFO with their verdict, then those at WARNING."""
    cells, value = info
    return [limit.figure, limit.limit, *cells, *verdict(limit, value), *warning]


def limit_rows(results: dict[str, Any]) -> list[list[str]]:
    """Every row of the limits table."""
    runs = results["web"]["runs"]
    rps = {name: [r["rps"] for r in values] for name, values in runs.items()}
    rows = []
    for limit, key, base in THROUGHPUT:
        info = paired_cells(rps[key], rps[f"{key}_{base}_log"], 0)
        warning, _ = paired_cells(rps[f"{key}_warning"], rps[f"{key}_{base}"], 0)
        rows.append(row(limit, info, warning))
    startup = results["startup_s"]
    for limit, base in ((STARTUP, "sqlalchemy"), (STARTUP_BARE, "bare")):
        rows.append(row(limit, paired_cells(startup["baked"], startup[base], 3), NOT_MEASURED))
    memory = results["web"]["memory_kib"]

    def workers(name: str, field: str) -> list[float]:
        return [kib / 1024 for kib in memory[name][field] if kib]

    for limit, field in (
        (PSS, "worker_pss_kib"),
        (USS, "worker_uss_kib"),
        (PEAK, "worker_peak_kib"),
    ):
        info = spread_cells(workers("baked", field), workers("bare_log", field))
        warning, _ = spread_cells(workers("baked_warning", field), workers("bare", field))
        rows.append(row(limit, info, warning))
    return rows


def render_limits(plan: Plan, results: dict[str, Any]) -> list[str]:
    """The limits section: the ratios with their targets, then the latencies."""
    out: list[str] = []
    add = out.append
    add("## Limits: the baked service against the least one could write")
    add("")
    add(
        "Each figure of the web line as it ships, at LOG_LEVEL=INFO (one JSON access line per "
        "request on stdout), as a ratio to its limit (`bench/baselines/`, under gunicorn with "
        "`-w 2 -k sync`, the bake's interpreter and database). The limits log too (*+log*: "
        "gunicorn's own text access line on stdout, `--access-logfile -`), their stdout going "
        "to a file as the web line's does. The columns *at WARNING* give the same figure with "
        "no access line on either side: the web line at LOG_LEVEL=WARNING against the limit "
        "without `--access-logfile`. Each ratio's runs are interleaved in the same rounds. "
        "*Ratio* is the ratio of the medians; *range* spans the ratios of runs from the same "
        f"round ({plan.web_reps} round(s)), of start-ups next to each other "
        f"({plan.startup_reps} round(s)), and for memory the extremes over the workers. "
        "Throughput is above 1 when the baked service is faster; start-up and memory are "
        "above 1 when it is slower or bigger. The first page is "
        f"`GET /api/todos?limit={plan.page_size}`. The SQLAlchemy app is the least an app on "
        "this stack can be: Flask and a SQLAlchemy Core engine over psycopg2 in autocommit, "
        "with the baked statements and JSON. Memory is measured after the web load: PSS "
        "(proportional set size) splits each page a worker shares among the processes sharing "
        "it (the web line's master imports the app before forking, `preload_app`; bare "
        "Flask's workers each import their own), so it is what a further worker costs the "
        "machine; USS counts the worker's private pages alone (`Private_Clean` + "
        "`Private_Dirty` of `/proc/PID/smaps_rollup`); peak RSS counts every shared page in "
        "full in each worker. Rows without a target are information."
    )
    add("")
    add(table(HEADERS + WARNING_HEADERS, limit_rows(results), numeric_from=2))
    add("")
    runs = results["web"]["runs"]
    rows = []
    for limit, key, base in THROUGHPUT:
        top, bottom = key, f"{key}_{base}_log"
        cells = [limit.figure.split(",")[0], limit.limit]
        for measure, digits in (("p50_ms", 2), ("p99_ms", 2), ("service_cpu_us", 0)):
            cells += [
                fmt(median(r[measure] for r in runs[top]), digits),
                fmt(median(r[measure] for r in runs[bottom]), digits),
            ]
        cpu = [r["service_cpu_us"] for r in runs[top]]
        limit_cpu = [r["service_cpu_us"] for r in runs[bottom]]
        same_round = [ratio(a, b) for a, b in zip(cpu, limit_cpu, strict=False)]
        rows.append([*cells, fmt(ratio(median(cpu), median(limit_cpu)), 2), span(same_round)])
    headers = ["request", "limit", "baked p50 ms", "limit p50 ms", "baked p99 ms", "limit p99 ms"]
    headers += ["baked CPU µs", "limit CPU µs", "CPU ratio", "range"]
    add(table(headers, rows, numeric_from=2))
    add("")
    bounds = ", ".join(f"{1 / limit.bound:.2f}" for limit, *_ in THROUGHPUT)
    add(
        "Both at LOG_LEVEL=INFO against the +log limits. Latencies are the medians over the "
        f"runs of each run's percentile, at {plan.wrk_connections} connections on 2 workers "
        "(mostly time in the queue). CPU µs is the CPU time per request of the gunicorn "
        "processes and their PostgreSQL backends (median over the runs): other load on the "
        "machine slows a run down but hardly changes it, so on a busy machine its ratio "
        "(baked over limit, above 1 when the baked service is dearer) is the steadier reading "
        f"of the same cost. The throughput targets correspond to CPU ratios of at most {bounds}."
    )
    add("")
    return out
