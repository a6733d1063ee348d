"""How much the bench measures (the plan), where it writes, and its progress log."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

TEMPLATE_DIR = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
# BENCH_OUTPUT lets the template test keep its smoke report away from `make bench`'s.
RESULTS_DIR = Path(os.environ.get("BENCH_OUTPUT") or TEMPLATE_DIR / "build" / "bench")
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 14
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"

T0 = time.monotonic()


def progress(message: str) -> None:
    """One progress line on stderr, stamped with the seconds since the start."""
    print(f"[bench {time.monotonic() - T0:6.1f}s] {message}", file=sys.stderr, flush=True)


MODES = {"": "full", "0": "full", "1": "quick", "test": "test"}


@dataclass(frozen=True)
class Plan:
    """How much to measure: `full`; `quick` (BENCH_QUICK=1) runs one repetition of
    everything; `test` (BENCH_QUICK=test) is the smallest run that still gives every
    section and figure, for tests/test_bench.py."""

    mode: str
    web_reps: int
    duration: float
    wrk_threads: int
    wrk_connections: int
    seed_todos: int
    deep_after: int
    page_size: int
    worker_reps: int
    tasks: int
    startup_reps: int
    roundtrip_requests: int
    growth_sizes: tuple[int, ...]
    growth_reps: int
    sweep_connections: tuple[int, ...]
    sweep_reps: int
    # Seconds per wrk run of the paging growth and of the connection sweep.
    growth_duration: float
    bake_reps: int
    newcomer_pip: bool
    # Requests per profiled path (profiles.py).
    profile_requests: int

    @property
    def quick(self) -> bool:
        """Any reduced plan: its figures are a smoke check, not a measurement."""
        return self.mode != "full"

    @classmethod
    def from_environment(cls) -> Plan:
        """The plan BENCH_QUICK asks for; BENCH_DURATION overrides the wrk run length."""
        setting = os.environ.get("BENCH_QUICK", "")
        if setting not in MODES:
            raise SystemExit(f"BENCH_QUICK={setting!r}: use 1 (quick), test, or leave it unset")
        mode = MODES[setting]
        full, test = mode == "full", mode == "test"
        default_duration = 5 if full else 1 if test else 2
        duration = float(os.environ.get("BENCH_DURATION", default_duration))
        return cls(
            mode=mode,
            web_reps=5 if full else 1,
            duration=duration,
            wrk_threads=2,
            wrk_connections=16,
            seed_todos=2000,
            deep_after=1900,
            page_size=20,
            worker_reps=3 if full else 1,
            tasks=100 if test else 400,
            startup_reps=5 if full else 1,
            roundtrip_requests=20,
            growth_sizes=(10**3, 10**4) if test else (10**3, 10**5, 10**6),
            growth_reps=3 if full else 1,
            sweep_connections=(1, 8, 32, 128),
            sweep_reps=3 if full else 1,
            growth_duration=min(duration, 3),
            bake_reps=5 if full else 2,
            # pip alone takes about a minute, half of the test's budget.
            newcomer_pip=not test,
            profile_requests=2000 if full else 100 if test else 500,
        )
