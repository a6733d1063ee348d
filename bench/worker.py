"""Phase 6, worker (celery bake): archive tasks enqueued through the API, drained by one
worker process and by two."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import procs
from .bakes import Bake, seed
from .plan import REDIS_DB, REDIS_HOST, REDIS_PORT, Plan, progress
from .report import fmt, median, ratio, spread, table
from .servers import start_web
from .sql import SqlPipe

CELERY_QUEUE = "celery"


def redis(*command: str) -> object:
    """One command on the bench's Redis database."""
    return procs.redis_command(REDIS_HOST, REDIS_PORT, REDIS_DB, *command)


def enqueue(port: int, ids: list[int]) -> int:
    """POST /api/todos/<id>/archive for each id (4 at a time); how many answered 202."""

    def one(todo_id: int) -> int:
        return procs.http_request("POST", port, f"/api/todos/{todo_id}/archive", timeout=10)[0]

    with ThreadPoolExecutor(max_workers=4) as pool:
        return sum(1 for status in pool.map(one, ids) if status == 202)


def measure_worker(plan: Plan, pipe: SqlPipe, b: Bake, logs: Path) -> dict[str, Any]:
    """Phase 5: drain plan.tasks archive tasks with 1 worker process, then 2; interleaved."""
    redis("FLUSHDB")
    ids = seed(pipe, b, plan.tasks)
    low, high = ids[0], ids[-1]
    web = start_web(b, logs, "web-celery")
    runs: dict[str, list[dict[str, float]]] = {"1": [], "2": []}
    memory: dict[str, int | None] = {}
    worker_command = procs.procfile_command(b.path, "worker")
    try:
        for rep in range(plan.worker_reps):
            for processes in (1, 2) if rep % 2 == 0 else (2, 1):
                pipe.sql(
                    b.label,
                    b.url,
                    "UPDATE todos SET archived_at = NULL WHERE id BETWEEN %s AND %s",
                    [low, high],
                )
                waiting = redis("LLEN", CELERY_QUEUE)
                if waiting:
                    raise RuntimeError(f"{waiting} tasks were left in the queue")
                started = time.monotonic()
                accepted = enqueue(web.port or 0, ids)
                enqueue_s = time.monotonic() - started
                queued = redis("LLEN", CELERY_QUEUE)
                if accepted != len(ids):
                    raise RuntimeError(f"only {accepted} of {len(ids)} archive requests got 202")
                workers = []
                for k in range(1, processes + 1):
                    workers.append(
                        procs.start(
                            f"worker{k}",
                            [*worker_command, "--hostname", f"bench{k}@%h"],
                            cwd=b.path,
                            env=b.env(WORKER_CONCURRENCY="1"),
                            log_path=logs / f"worker{k}.log",
                        )
                    )
                began = workers[0].started
                remaining, span = len(ids), None
                try:
                    stop_at = time.monotonic() + 120
                    while time.monotonic() < stop_at:
                        remaining, span = pipe.sql(
                            b.label,
                            b.url,
                            "SELECT count(*) FILTER (WHERE archived_at IS NULL), "
                            "extract(epoch FROM max(archived_at) - min(archived_at)) "
                            "FROM todos WHERE id BETWEEN %s AND %s",
                            [low, high],
                        )[0]
                        if remaining == 0:
                            break
                        for w in workers:
                            if w.popen.poll() is not None:
                                raise RuntimeError(f"{w.name} exited:\n{procs.tail(w.log_path)}")
                        time.sleep(0.05)
                    wall = time.monotonic() - began
                    if remaining:
                        raise RuntimeError(f"{remaining} todos still unarchived after 120 s")
                    # The middle 80% of the tasks, by archived_at: a steady-state rate that
                    # leaves out the second worker's later start and the last task's tail.
                    middle = pipe.sql(
                        b.label,
                        b.url,
                        "SELECT percentile_cont(ARRAY[0.1, 0.9]) WITHIN GROUP "
                        "(ORDER BY extract(epoch FROM archived_at)) "
                        "FROM todos WHERE id BETWEEN %s AND %s",
                        [low, high],
                    )[0][0]
                    middle_s = float(middle[1]) - float(middle[0])
                    if processes == 1 and not memory:
                        memory["celery worker (main)"] = procs.rss_kib(workers[0].pid)
                        for n, child in enumerate(procs.child_pids(workers[0].pid), 1):
                            memory[f"celery pool child {n}"] = procs.rss_kib(child)
                finally:
                    for w in workers:
                        procs.stop(w)
                span_s = float(span or 0)
                runs[str(processes)].append(
                    {
                        "wall_s": wall,
                        "span_s": span_s,
                        "tasks_per_s": (len(ids) - 1) / span_s if span_s else float("nan"),
                        "steady_tasks_per_s": 0.8 * len(ids) / middle_s
                        if middle_s
                        else float("nan"),
                        "enqueue_s": enqueue_s,
                        "queued": float(queued or 0),
                    }
                )
                progress(
                    f"worker rep {rep + 1}/{plan.worker_reps}, {processes} process(es): "
                    f"drained {len(ids)} in {wall:.2f} s from start "
                    f"(first to last task {span_s:.2f} s); enqueue took {enqueue_s:.2f} s"
                )
    finally:
        procs.stop(web)
        redis("FLUSHDB")
    return {"runs": runs, "memory_kib": memory}


def render_worker(plan: Plan, w: dict[str, Any]) -> list[str]:
    """The worker section: drain times and rates, and the speed-up of a second process."""
    out: list[str] = []
    add = out.append
    add(
        f"## Worker: celery bake, {plan.tasks} archive tasks enqueued through the API, then drained"
    )
    add("")
    add(
        "Each worker process is the `worker` line with WORKER_CONCURRENCY=1 and "
        "`--hostname benchN@%h`; runs alternate 1 and 2 processes. *From start*: worker "
        "start-up until every todo has `archived_at` (polled every 50 ms); *first to last "
        "task*: spread of `archived_at` in the database, i.e. pure drain time."
    )
    add("")
    rows = []
    for processes, values in w["runs"].items():
        rows.append(
            [
                f"{processes} worker process(es): from start, s",
                *spread([r["wall_s"] for r in values], 2),
            ]
        )
        rows.append(
            [
                f"{processes} worker process(es): first to last task, s",
                *spread([r["span_s"] for r in values], 2),
            ]
        )
        rows.append(
            [
                f"{processes} worker process(es): tasks/s, first to last",
                *spread([r["tasks_per_s"] for r in values], 0),
            ]
        )
        rows.append(
            [
                f"{processes} worker process(es): tasks/s, middle 80%",
                *spread([r["steady_tasks_per_s"] for r in values], 0),
            ]
        )
    enqueue_s = [r["enqueue_s"] for values in w["runs"].values() for r in values]
    rows.append([f"enqueue {plan.tasks} via POST …/archive (4 clients), s", *spread(enqueue_s, 2)])
    add(table(["measure", "median", "min", "max", "runs"], rows))
    add("")
    one, two = w["runs"]["1"], w["runs"]["2"]

    def speedup(measure: str, faster_is_bigger: bool) -> str:
        a, b = median(r[measure] for r in one), median(r[measure] for r in two)
        return fmt(ratio(b, a) if faster_is_bigger else ratio(a, b), 2)

    speedups = [
        [
            "steady drain rate (tasks/s, middle 80% of the tasks)",
            speedup("steady_tasks_per_s", True),
        ],
        ["drain, first to last task", speedup("span_s", False)],
        ["from start (includes Celery's start-up)", speedup("wall_s", False)],
    ]
    add(table(["speed-up, 2 processes vs 1 (2.0 = perfect)", "value"], speedups))
    add("")
    return out
