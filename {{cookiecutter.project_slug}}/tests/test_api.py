"""The HTTP contract of the service, row by row, against the real database."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pydantic import BaseModel
from spectree import Response, SpecTree
from werkzeug.test import TestResponse

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.openapi import SchemasOnDemand, api
from {{ cookiecutter.package_name }}.web_server.wsgi import DRAINING_ENVIRON_KEY

from .databases import count_todos
from .environments import revised

PROBLEM = "application/problem+json"


def create(client: FlaskClient, title: str = "Write tests", **fields: Any) -> dict[str, Any]:
    """Create a todo through the API and return its body."""
    response = client.post("/api/todos", json={"title": title, **fields})
    assert response.status_code == 201, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def assert_problem(response: TestResponse, status: int) -> dict[str, Any]:
    """The response is a problem document with this status; return its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body: dict[str, Any] = response.get_json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    assert "Traceback" not in response.get_data(as_text=True)
    return body


def error_fields(body: dict[str, Any]) -> set[str]:
    """The fields a validation problem names."""
    return {error["field"] for error in body["errors"]}


def test_healthz_answers_ok(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_reports_the_database_check(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == "ok"


def test_readyz_answers_503_while_the_server_drains(client: FlaskClient) -> None:
    # The web server sets this key of the WSGI environ on each request after SIGTERM.
    response = client.get("/readyz", environ_base={DRAINING_ENVIRON_KEY: True})
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert body["checks"]["shutdown"] == "draining"
    assert body["checks"]["database"] == "ok"


def test_version_reports_code_version_and_release(client: FlaskClient) -> None:
    body = client.get("/version").get_json()
    assert body == {"version": "{{ cookiecutter.version }}", "release": "test-release"}


def test_create_returns_201_with_body_and_location(client: FlaskClient) -> None:
    response = client.post("/api/todos", json={"title": "Buy milk"})
    assert response.status_code == 201
    body = response.get_json()
    assert body["title"] == "Buy milk"
    assert body["done"] is False
    assert response.headers["Location"] == f"/api/todos/{body['id']}"
    assert client.get(response.headers["Location"]).get_json() == body


def test_timestamps_are_iso_8601_in_utc(client: FlaskClient) -> None:
    body = create(client)
    for field in ("created_at", "updated_at"):
        assert body[field].endswith("Z")
        assert datetime.fromisoformat(body[field]).utcoffset() == timedelta(0)


def test_create_accepts_done_and_trims_the_title(client: FlaskClient) -> None:
    body = create(client, "  Trimmed  ", done=True)
    assert body["title"] == "Trimmed"
    assert body["done"] is True


def test_list_is_newest_first(client: FlaskClient) -> None:
    ids = [create(client, f"todo {number}")["id"] for number in range(3)]
    items = client.get("/api/todos").get_json()["items"]
    assert [item["id"] for item in items] == list(reversed(ids))


def test_list_pages_through_everything_once_with_cursors(client: FlaskClient) -> None:
    created = {create(client, f"todo {number}")["id"] for number in range(45)}
    seen: list[int] = []
    page_sizes = []
    url = "/api/todos?limit=20"
    while True:
        body = client.get(url).get_json()
        seen.extend(item["id"] for item in body["items"])
        page_sizes.append(len(body["items"]))
        if body["next_cursor"] is None:
            break
        url = f"/api/todos?limit=20&cursor={body['next_cursor']}"
    assert page_sizes == [20, 20, 5]
    assert len(seen) == len(set(seen))
    assert set(seen) == created
    assert seen == sorted(seen, reverse=True)


def test_list_defaults_to_twenty_items(client: FlaskClient) -> None:
    for number in range(21):
        create(client, f"todo {number}")
    body = client.get("/api/todos").get_json()
    assert len(body["items"]) == 20
    assert body["next_cursor"] is not None


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten"])
def test_list_rejects_a_limit_outside_1_to_100(client: FlaskClient, limit: str) -> None:
    body = assert_problem(client.get(f"/api/todos?limit={limit}"), 422)
    assert error_fields(body) == {"limit"}


@pytest.mark.parametrize("cursor", ["not-a-cursor", "bm90aGluZw", "MjAyNi0wMS0wMXxh"])
def test_list_rejects_a_cursor_it_did_not_issue(client: FlaskClient, cursor: str) -> None:
    body = assert_problem(client.get(f"/api/todos?cursor={cursor}"), 422)
    assert error_fields(body) == {"cursor"}


def test_get_unknown_todo_is_404(client: FlaskClient) -> None:
    assert_problem(client.get("/api/todos/999999"), 404)


def test_patch_changes_only_the_fields_given(client: FlaskClient) -> None:
    todo = create(client, "Keep this title")
    response = client.patch(f"/api/todos/{todo['id']}", json={"done": True})
    assert response.status_code == 200
    body = response.get_json()
    assert body["done"] is True
    assert body["title"] == "Keep this title"
    assert body["created_at"] == todo["created_at"]
    assert body["updated_at"] >= todo["updated_at"]


def test_patch_unknown_todo_is_404(client: FlaskClient) -> None:
    assert_problem(client.patch("/api/todos/999999", json={"done": True}), 404)


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"title": None}, "title"),
        ({"title": ""}, "title"),
        ({"done": "yes"}, "done"),
        ({"priority": 1}, "priority"),
    ],
)
def test_patch_rejects_bad_fields_and_changes_nothing(
    client: FlaskClient, patch: dict[str, Any], field: str
) -> None:
    todo = create(client, "Unchanged")
    body = assert_problem(client.patch(f"/api/todos/{todo['id']}", json=patch), 422)
    assert error_fields(body) == {field}
    assert client.get(f"/api/todos/{todo['id']}").get_json() == todo


def test_delete_returns_204_then_404(client: FlaskClient) -> None:
    todo = create(client)
    response = client.delete(f"/api/todos/{todo['id']}")
    assert response.status_code == 204
    assert response.data == b""
    assert "Content-Type" not in response.headers
    assert_problem(client.get(f"/api/todos/{todo['id']}"), 404)
    assert_problem(client.delete(f"/api/todos/{todo['id']}"), 404)


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({}, {"title"}),
        ({"title": ""}, {"title"}),
        ({"title": "   "}, {"title"}),
        ({"title": "x" * 201}, {"title"}),
        ({"title": 7}, {"title"}),
        ({"title": "ok", "done": "true"}, {"done"}),
        ({"title": "ok", "owner": "me"}, {"owner"}),
    ],
    ids=["missing", "empty", "blank", "too-long", "not-a-string", "done-not-bool", "unknown"],
)
def test_create_rejects_invalid_fields_with_422_naming_them(
    client: FlaskClient, settings: Settings, payload: dict[str, Any], fields: set[str]
) -> None:
    body = assert_problem(client.post("/api/todos", json=payload), 422)
    assert error_fields(body) == fields
    assert all(error["message"] for error in body["errors"])
    assert count_todos(settings.database_url) == 0
    assert client.get("/healthz").status_code == 200


def test_title_of_exactly_200_characters_is_accepted(client: FlaskClient) -> None:
    assert create(client, "x" * 200)["title"] == "x" * 200


def test_malformed_json_is_400(client: FlaskClient, settings: Settings) -> None:
    response = client.post("/api/todos", data='{"title": ', content_type="application/json")
    assert_problem(response, 400)
    assert count_todos(settings.database_url) == 0


def test_wrong_content_type_is_415(client: FlaskClient) -> None:
    response = client.post("/api/todos", data="title=x", content_type="text/plain")
    assert_problem(response, 415)


def test_body_over_max_content_length_is_413(settings: Settings) -> None:
    app = create_app(revised(settings, max_content_length=64))
    response = app.test_client().post("/api/todos", json={"title": "x" * 100})
    assert_problem(response, 413)
    app.extensions["database"].dispose()


def test_unknown_route_is_404_problem(client: FlaskClient) -> None:
    assert_problem(client.get("/no/such/route"), 404)


def test_wrong_method_is_405_with_allow_header(client: FlaskClient) -> None:
    response = client.put("/api/todos", json={"title": "x"})
    assert_problem(response, 405)
    assert "POST" in response.headers["Allow"]


def test_unexpected_error_is_500_problem_without_traceback(failing_client: FlaskClient) -> None:
    response = failing_client.get("/boom")
    body = assert_problem(response, 500)
    assert "secret internals" not in response.get_data(as_text=True)
    assert body["title"] == "Internal Server Error"


def test_under_flask_run_debug_an_unexpected_error_is_left_to_the_debugger(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASK_DEBUG", "1")  # what `flask run --debug` sets
    app = create_app(settings)

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("read me in the debugger")

    # Flask re-raises it, for Werkzeug's debugger to show instead of a 500 problem.
    with pytest.raises(RuntimeError, match="read me in the debugger"):
        app.test_client().get("/boom")
    app.extensions["database"].dispose()


def test_database_down_gives_503_and_readyz_503_while_healthz_stays_200(
    settings: Settings,
) -> None:
    unreachable = "postgresql://postgres@127.0.0.1:1/nowhere"
    app = create_app(revised(settings, database_url=unreachable))
    client = app.test_client()
    assert_problem(client.get("/api/todos"), 503)
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["status"] == "unavailable"
    assert ready.get_json()["checks"]["database"] == "unavailable"
    assert client.get("/healthz").status_code == 200


def test_every_response_carries_a_request_id(client: FlaskClient) -> None:
    for response in (client.get("/healthz"), client.get("/nowhere"), client.post("/api/todos")):
        assert len(response.headers["X-Request-ID"]) >= 16


def test_a_sane_caller_request_id_is_echoed(client: FlaskClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "caller-id.42"})
    assert response.headers["X-Request-ID"] == "caller-id.42"


@pytest.mark.parametrize("request_id", ["has space", "x" * 300, "new\\nline", "<script>"])
def test_an_insane_caller_request_id_is_replaced(client: FlaskClient, request_id: str) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": request_id})
    assert response.headers["X-Request-ID"] != request_id


def test_openapi_document_describes_the_api_from_the_validation_models(
    client: FlaskClient,
) -> None:
    document = client.get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    assert {"/api/todos", "/api/todos/{todo_id}", "/healthz", "/readyz", "/version"} <= set(
        document["paths"]
    )
    assert set(document["paths"]["/api/todos/{todo_id}"]) >= {"get", "patch", "delete"}
    # Views called without spectree's validation (openapi.documented) are described all the same.
    for path, model in (("/healthz", "Health"), ("/api/todos/{todo_id}", "TodoOut")):
        answer = document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
        assert answer["schema"] == {"$ref": f"#/components/schemas/{model}"}
    title = document["components"]["schemas"]["TodoCreate"]["properties"]["title"]
    assert (title["minLength"], title["maxLength"]) == (1, 200)


class Tag(BaseModel):
    name: str


class Tagged(BaseModel):
    tags: list[Tag]


def test_models_are_described_when_the_document_is_read_as_spectree_describes_them() -> None:
    assert isinstance(api, SchemasOnDemand)
    documents = []
    for spec_class in (SpecTree, SchemasOnDemand):
        spec = spec_class("flask", naming_strategy=lambda model: model.__name__)
        app = Flask(__name__)

        @app.post("/tags")
        @spec.validate(json=Tagged, resp=Response(HTTP_201=Tag))
        def add_tags() -> dict[str, str]:
            return {"name": "x"}

        spec.register(app)
        if spec_class is SchemasOnDemand:
            assert spec.models == {}
        with app.app_context():
            documents.append(spec.spec)
    assert documents[1] == documents[0]
    assert {"Tag", "Tagged"} <= set(documents[1]["components"]["schemas"])
