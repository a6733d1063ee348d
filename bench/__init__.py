"""The template's performance harness: `make bench` (or `.venv/bin/python -m bench`).

It bakes the default and the worker=celery projects, installs them, and measures the
real processes of their Procfiles side by side in one run: throughput and latency of
the web process, drain time of the worker process, memory and start-up. See README.md.
"""
