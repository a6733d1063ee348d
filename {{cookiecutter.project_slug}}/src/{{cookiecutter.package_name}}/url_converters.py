"""URL converters: what a path segment must look like before a view sees it."""

from __future__ import annotations

from flask import Flask
from werkzeug.routing import IntegerConverter


class AsciiIntegerConverter(IntegerConverter):
    """`<int:...>` in ASCII digits only.

    Werkzeug's own matches `\\d`, which takes any Unicode digit, and int() reads them all,
    so /api/todos/ followed by an Arabic-Indic one would be todo 1 under a second URL.
    """

    regex = r"[0-9]+"
    signed_regex = r"-?[0-9]+"


def init_app(app: Flask) -> None:
    """Use it for every `<int:...>` route; the routes must be added after this."""
    app.url_map.converters["int"] = AsciiIntegerConverter
