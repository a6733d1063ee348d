"""The template's performance harness: `make bench` (or `.venv/bin/python -m bench`).

It bakes the default and the worker=celery projects, installs them, and measures the
real processes of their Procfiles side by side in one run, against the least one could
write instead (bench/baselines): throughput and latency of the web process, paging in
growing tables, drain time of the worker process, memory, start-up, and the newcomer's
time from a bake to the first 200. See README.md.
"""
