"""GET /docs: Swagger UI for /openapi.json, from the files the swagger-ui-py package ships.

Nothing comes from a CDN: the page, its script and its styles are all served by this app, so
the page's Content-Security-Policy can allow this origin and nothing else.
"""

from __future__ import annotations

import functools
from html import escape
from importlib import metadata, resources

from flask import Blueprint, Flask, Response, abort, send_file, url_for

from .config import Settings
from .openapi import document

# The few files of Swagger UI the page loads; nothing else in the package is served.
ASSET_TYPES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
ASSET_DISTRIBUTION = "swagger-ui-py"
ASSET_MAX_AGE = 365 * 24 * 3600

# Swagger UI needs this origin's scripts and styles, its own inline images (data: URIs in
# its stylesheet) and fetch() to this origin for the document and "Try it out"; no inline
# script, no eval, no other site, and no framing.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

# Started from a file of our own rather than an inline <script>, which the policy forbids.
# The document's URL comes from the page, so the app may be served under a path prefix.
INITIALIZER = """\
window.addEventListener("load", () => {
  const root = document.getElementById("swagger-ui");
  SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    domNode: root,
  });
});
"""

PAGE = """\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" type="image/png" href="{favicon}">
<link rel="stylesheet" href="{stylesheet}">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi}"></div>
<script src="{bundle}"></script>
<script src="{initializer}"></script>
</body>
</html>
"""

# spectree leaves out of the OpenAPI document every endpoint whose name starts with "openapi",
# as it does the document's own: the page and its files are not part of the API.
blueprint = Blueprint("openapi_page", __name__)


@functools.cache
def asset_version() -> str:
    """The version of Swagger UI installed, looked up once: asset URLs carry it, so that a
    browser may keep them until it changes."""
    return metadata.version(ASSET_DISTRIBUTION)


def asset_url(name: str) -> str:
    """The URL of one of Swagger UI's files, tied to the version installed."""
    return url_for("openapi_page.asset", name=name, v=asset_version())


@blueprint.get("/docs")
def page() -> Response:
    """The interactive page for the OpenAPI document."""
    html = PAGE.format(
        title=escape(f"{document()['info']['title']}: API docs"),
        favicon=escape(asset_url("favicon-32x32.png")),
        stylesheet=escape(asset_url("swagger-ui.css")),
        openapi=escape(url_for("openapi.openapi_document")),
        bundle=escape(asset_url("swagger-ui-bundle.js")),
        initializer=escape(url_for("openapi_page.initializer")),
    )
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = PAGE_POLICY
    response.cache_control.no_cache = True
    return response


@blueprint.get("/docs/initializer.js")
def initializer() -> Response:
    """The script that starts Swagger UI on the page."""
    response = Response(INITIALIZER, mimetype="text/javascript")
    response.cache_control.no_cache = True
    return response


@blueprint.get("/docs/assets/<name>")
def asset(name: str) -> Response:
    """One of Swagger UI's files, straight from the installed package."""
    # Imported here, by the first request for one of its files, rather than by every process
    # that starts the app: nothing else needs the package (nor PyYAML, which it imports).
    import swagger_ui

    if name not in ASSET_TYPES:
        abort(404)
    with resources.as_file(resources.files(swagger_ui) / "static" / name) as path:
        response = send_file(path, mimetype=ASSET_TYPES[name], max_age=ASSET_MAX_AGE)
    response.cache_control.public = True
    response.cache_control.immutable = True
    return response


def init_app(app: Flask, settings: Settings) -> None:
    """Serve the page unless API_DOCS_ENABLED is off; then /docs is an unknown route."""
    if settings.api_docs_enabled:
        app.register_blueprint(blueprint)
