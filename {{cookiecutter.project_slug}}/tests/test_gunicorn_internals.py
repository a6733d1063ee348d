"""What the web server relies on inside gunicorn, beyond its settings and hooks, is still there
(web_server/gunicorn_internals.py lists it, with why)."""

from __future__ import annotations

import inspect

from gunicorn.workers.ggevent import GeventWorker

from {{ cookiecutter.package_name }}.web_server.concurrency import (
    CooperativeWorker,
)
from {{ cookiecutter.package_name }}.web_server.gunicorn_internals import (
    INTERNALS,
    Internal,
    problem_with,
    problems,
)


def test_every_part_of_gunicorn_the_web_server_relies_on_is_as_declared() -> None:
    assert problems() == []


def test_a_method_gone_or_reshaped_by_an_upgrade_is_named_in_one_line() -> None:
    gone = Internal("gunicorn.arbiter.Arbiter", "handle_terminate", ("self",), "the drain")
    assert problem_with(gone) == (
        "gunicorn.arbiter.Arbiter.handle_terminate is gone or not callable; it served the drain"
    )
    reshaped = Internal("gunicorn.util", "write_error", ("sock", "status"), "the problem page")
    assert problem_with(reshaped) == (
        "gunicorn.util.write_error takes ('sock', 'status_int', 'reason', 'mesg'), "
        "not ('sock', 'status'); it served the problem page"
    )


def test_an_attribute_or_a_module_gone_is_named_in_one_line() -> None:
    attribute = Internal("gunicorn.http.message.Message", "must_close_now", None, "keep-alive")
    assert problem_with(attribute) == (
        "gunicorn.http.message.Message.must_close_now is gone; it served keep-alive"
    )
    module = Internal("gunicorn.workers.gevent_gone", "Worker", None, "the workers")
    assert problem_with(module) == "gunicorn.workers.gevent_gone is gone; it served the workers"


def test_each_method_the_worker_overrides_in_gunicorn_is_declared() -> None:
    declared = {
        internal.name
        for internal in INTERNALS
        if internal.owner == "gunicorn.workers.ggevent.GeventWorker"
    }
    overridden = {
        name
        for name, member in vars(CooperativeWorker).items()
        if inspect.isfunction(member) and hasattr(GeventWorker, name)
    }
    assert overridden <= declared, f"undeclared: {sorted(overridden - declared)}"
