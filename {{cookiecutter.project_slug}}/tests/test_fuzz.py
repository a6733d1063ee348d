"""Generated input, valid or not: every answer is a success or a problem document, never a 500,
and a rejected request changes nothing."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from {{ cookiecutter.package_name }}.config import Settings

from .databases import count_todos

# The client and the database are shared by the examples of one test on purpose:
# each example checks what it changed, not an absolute state. How many examples each test
# tries is the Hypothesis profile's choice (tests/conftest.py).
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
todo_like = st.fixed_dictionaries(
    {},
    optional={
        "title": st.text(max_size=220) | json_values,
        "done": st.booleans() | json_values,
        "extra": json_values,
    },
)
PROBLEM = "application/problem+json"


def assert_answered(response: Any, accepted: set[int]) -> None:
    """The status is one of the accepted ones, and every error is a problem document."""
    assert response.status_code in accepted | {400, 413, 415, 422}, response.get_data(as_text=True)
    if response.status_code >= 400:
        assert response.mimetype == PROBLEM
        assert response.get_json()["status"] == response.status_code


@FUZZ
@given(body=todo_like | json_values)
def test_any_json_body_creates_a_todo_or_is_refused_without_a_trace(
    client: FlaskClient, settings: Settings, body: Any
) -> None:
    before = count_todos(settings.database_url)
    response = client.post("/api/todos", json=body)
    assert_answered(response, {201})
    expected = before + 1 if response.status_code == 201 else before
    assert count_todos(settings.database_url) == expected


@FUZZ
@given(
    data=st.binary(max_size=300),
    content_type=st.sampled_from(["application/json", "text/plain", ""]),
)
def test_any_bytes_are_created_or_refused_never_a_crash(
    client: FlaskClient, data: bytes, content_type: str
) -> None:
    response = client.post("/api/todos", data=data, content_type=content_type)
    assert_answered(response, {201})


@FUZZ
@given(patch=todo_like | json_values)
def test_any_patch_changes_exactly_the_valid_fields_or_nothing(
    client: FlaskClient, patch: Any
) -> None:
    todo = client.post("/api/todos", json={"title": "target"}).get_json()
    response = client.patch(f"/api/todos/{todo['id']}", json=patch)
    assert_answered(response, {200})
    after = client.get(f"/api/todos/{todo['id']}").get_json()
    if response.status_code != 200:
        assert after == todo


@FUZZ
@given(limit=st.text(max_size=6), cursor=st.text(max_size=40))
def test_any_paging_parameters_give_a_page_or_a_problem(
    client: FlaskClient, limit: str, cursor: str
) -> None:
    response = client.get("/api/todos", query_string={"limit": limit, "cursor": cursor})
    assert_answered(response, {200})
