"""The load generator of a run: wrk, or the Python fallback, with the plan's duration and
concurrency."""

from __future__ import annotations

from . import load
from .plan import Plan, progress
from .servers import Scenario


class Loader:
    """wrk or the Python fallback, with the plan's duration and concurrency."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.wrk = load.ensure_wrk(progress)
        self.name = load.wrk_version(self.wrk) if self.wrk else "Python threads + http.client"

    def run(
        self,
        port: int,
        scenario: Scenario,
        duration: float | None = None,
        connections: int | None = None,
    ) -> load.LoadResult:
        """One fixed-duration run of a scenario (the plan's duration and connections)."""
        duration = duration or self.plan.duration
        connections = connections or self.plan.wrk_connections
        if self.wrk:
            return load.run_wrk(
                self.wrk,
                f"http://127.0.0.1:{port}{scenario.path}",
                scenario.method,
                duration,
                min(self.plan.wrk_threads, connections),
                connections,
            )
        return load.run_python(port, scenario.path, scenario.method, duration, connections)
