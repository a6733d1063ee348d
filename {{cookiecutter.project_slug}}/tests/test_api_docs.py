"""GET /docs without a browser: the page, its files, its policy, and the switch that hides it.

tests/test_api_docs_page.py opens the same page in a real browser.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient

from {{ cookiecutter.package_name }} import __version__, create_app
from {{ cookiecutter.package_name }}.config import Settings

from .environments import revised

# What the page may load and do: this origin's scripts, styles, images and fetches, the
# data: images of Swagger UI's stylesheet, and nothing else.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
EXPECTED_TYPES = {
    ".json": "application/json",
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
}
LINKED = re.compile(r'(?:src|href|data-openapi-url)="([^"]*)"')


def test_docs_page_is_html_under_a_policy_that_allows_only_this_origin(
    client: FlaskClient,
) -> None:
    response = client.get("/docs")

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == PAGE_POLICY
    assert response.headers["Cache-Control"] == "no-cache"


def test_docs_page_has_no_inline_script(client: FlaskClient) -> None:
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", client.get("/docs").text, re.DOTALL)

    assert scripts
    assert all('src="' in attributes and not body.strip() for attributes, body in scripts)


def test_everything_the_page_links_is_served_by_the_app_with_its_type(
    client: FlaskClient,
) -> None:
    page = client.get("/docs").text
    links = LINKED.findall(page)

    assert "//" not in page
    assert len(links) == 5
    for link in links:
        assert link.startswith("/"), link
        assert not link.startswith("//"), link
        with client.get(link) as response:
            assert response.status_code == 200, link
            assert response.mimetype == EXPECTED_TYPES[PurePosixPath(urlsplit(link).path).suffix]


def test_the_initializer_names_no_other_site(client: FlaskClient) -> None:
    initializer = client.get("/docs/initializer.js")

    assert initializer.status_code == 200
    assert "//" not in initializer.text


def test_swagger_ui_files_are_kept_by_browsers_until_the_package_changes(
    client: FlaskClient,
) -> None:
    version = metadata.version("swagger-ui-py")
    stylesheet = re.search(
        r'href="(/docs/assets/swagger-ui\.css\?v=[^"]+)"', client.get("/docs").text
    )

    assert stylesheet is not None
    assert stylesheet.group(1).endswith(f"?v={version}")
    with client.get(stylesheet.group(1)) as response:
        cache_control = set(response.headers["Cache-Control"].split(", "))
    assert cache_control == {"public", "max-age=31536000", "immutable"}


@pytest.mark.parametrize(
    "path",
    ["/docs/assets/LICENSE", "/docs/assets/swagger-editor.js", "/docs/assets/..%2F__init__.py"],
)
def test_no_other_file_of_the_package_is_served(client: FlaskClient, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize(
    "path", ["/docs", "/docs/initializer.js", "/docs/assets/swagger-ui-bundle.js"]
)
def test_docs_switched_off_are_unknown_routes(settings: Settings, path: str) -> None:
    app = create_app(revised(settings, api_docs_enabled=False))

    with app.test_client().get(path) as response:
        assert response.status_code == 404
        assert response.mimetype == "application/problem+json"
    app.extensions["database"].dispose()


def test_docs_stay_out_of_the_openapi_document(client: FlaskClient) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]

    assert paths
    assert not [path for path in paths if path.startswith("/docs")]


def test_the_api_document_and_its_page_carry_the_project_name_and_version(
    client: FlaskClient,
) -> None:
    project = "{{ cookiecutter.project_slug }}"
    info = client.get("/openapi.json").get_json()["info"]
    assert info["title"] == project
    assert info["version"] == __version__ == metadata.version(project)
    assert info["description"] == metadata.metadata(project)["Summary"]
    assert f"<title>{project}: API docs</title>" in client.get("/docs").text
