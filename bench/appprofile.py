"""Where an app's time goes, without a web server: run with a baked project's interpreter.

    python bench/appprofile.py --app my_service.wsgi:app --path /healthz --requests 2000

For each path: the wall time per request (the app called as WSGI, no profiler), then the
self time of a profiled run (cProfile) grouped by the package the code belongs to. Then
the import of the app's module (``python -X importtime``), its self time grouped the same
way. Prints one JSON object; the harness (profiles.py) renders it.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import io
import json
import pstats
import re
import statistics
import subprocess
import sys
import sysconfig
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

WARM_UP = 200
TIMED_BATCHES = 5
STDLIB = sysconfig.get_paths()["stdlib"]


def load(spec: str) -> Callable[..., Iterable[bytes]]:
    """The WSGI callable named module:attribute."""
    module_name, _, attribute = spec.partition(":")
    app: Callable[..., Iterable[bytes]] = getattr(importlib.import_module(module_name), attribute)
    return app


def environ_for(path: str) -> dict[str, Any]:
    """A minimal WSGI environ for a GET of path from 127.0.0.1."""
    route, _, query = path.partition("?")
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": route,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def call(app: Callable[..., Iterable[bytes]], path: str) -> None:
    """One request through the app; fail unless it answers 200."""
    statuses: list[str] = []
    body = app(environ_for(path), lambda status, _headers, _exc=None: statuses.append(status))
    try:
        b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    if not statuses or not statuses[0].startswith("200"):
        raise SystemExit(f"{path}: the app answered {statuses[:1]}, not 200")


def package_of(filename: str, function: str, service: str) -> str:
    """The package a profiled function belongs to, for grouping."""
    if filename == "~":  # a built-in: name the package of the type it is a method of
        owner = re.search(r"of '([\w.]+)' objects", function)
        if owner is None or "." not in owner.group(1):
            return "built-ins"
        package = owner.group(1).split(".")[0]
        if package == "psycopg2":
            return "psycopg2 (waiting on PostgreSQL)"
        return "standard library" if package in sys.stdlib_module_names else package
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if f"/{service}/" in filename:
        return "the service's own code"
    if filename.startswith(STDLIB):
        return "standard library"
    return "other"


def short_name(filename: str, line: int, function: str) -> str:
    """A function's name for the report, its file relative to where it is installed."""
    if filename == "~":
        return function
    for root in ("site-packages/", STDLIB + "/"):
        if root in filename:
            filename = filename.split(root, 1)[1]
            break
    else:
        filename = filename.rsplit("/", 1)[-1]
    return f"{filename}:{line}({function})"


def profile_path(
    app: Callable[..., Iterable[bytes]], path: str, requests: int, service: str
) -> dict[str, Any]:
    """Wall time per request, and self time by package of a profiled run."""
    for _ in range(WARM_UP):
        call(app, path)
    batches = []
    for _ in range(TIMED_BATCHES):
        start = time.perf_counter()
        for _ in range(requests // TIMED_BATCHES or 1):
            call(app, path)
        batches.append((time.perf_counter() - start) / (requests // TIMED_BATCHES or 1))
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(requests):
        call(app, path)
    profiler.disable()
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    by_package: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    for (filename, line, function), (_, _, own, *_rest) in raw.items():
        by_package[package_of(filename, function, service)] += own
        by_function[short_name(filename, line, function)] += own
    total = sum(by_package.values()) or 1.0
    return {
        "wall_us": 1e6 * statistics.median(batches),
        "profiled_calls": requests,
        "self_share": {name: own / total for name, own in by_package.most_common()},
        "top_functions": {name: own / total for name, own in by_function.most_common(8)},
    }


def profile_import(module: str, service: str) -> dict[str, Any]:
    """Import time of module in a fresh interpreter, by package (self time)."""
    start = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - this interpreter, importing the app's module
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - start
    by_package: Counter[str] = Counter()
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or "self [us]" in parts[0]:
            continue
        top = parts[2].strip().split(".")[0]
        name = "the service's own code" if top == service else top
        if top in sys.stdlib_module_names:
            name = "standard library"
        by_package[name] += int(parts[0].split(":")[1])
    return {
        "process_wall_s": wall,
        "imports_ms": sum(by_package.values()) / 1000,
        "by_package_ms": {name: us / 1000 for name, us in by_package.most_common()},
    }


def main() -> None:
    """Profile the paths and the import; print the JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--app", required=True, help="module:attribute of the WSGI app")
    parser.add_argument("--path", action="append", required=True)
    parser.add_argument("--requests", type=int, default=2000)
    arguments = parser.parse_args()
    module = arguments.app.partition(":")[0]
    service = module.split(".")[0]
    imports = profile_import(module, service)
    app = load(arguments.app)
    paths = {path: profile_path(app, path, arguments.requests, service) for path in arguments.path}
    print(json.dumps({"app": arguments.app, "paths": paths, "import": imports}))


if __name__ == "__main__":
    main()
