"""The least a Flask service can be: one route returning a constant (the /healthz limit)."""

from flask import Flask

app = Flask(__name__)


@app.get("/healthz")
def healthz() -> dict[str, str]:
    """The baked service's /healthz body, with no work behind it."""
    return {"status": "ok"}
