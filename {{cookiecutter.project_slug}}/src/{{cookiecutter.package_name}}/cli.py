"""One-off admin commands that run with the service's own code and config (factor XII)."""

from __future__ import annotations

import click
from flask import Flask, current_app
from sqlalchemy import func, make_url, select

from .config import Settings
from .db import get_session
from .models import Todo


@click.command("show-config")
def show_config() -> None:
    """Print the settings in force, with secrets masked."""
    settings: Settings = current_app.extensions["settings"]
    for name, value in settings.model_dump().items():
        # Backing services are attached by URL (factor IV), and a URL may carry a password.
        if name.endswith("_url"):
            value = make_url(value).render_as_string(hide_password=True)
        click.echo(f"{name.upper()}={value}")


@click.command("count-todos")
def count_todos() -> None:
    """Print how many todos the database holds."""
    total = get_session().scalar(select(func.count()).select_from(Todo))
    click.echo(str(total))


def init_app(app: Flask) -> None:
    """Make the commands available as `flask --app <package>.wsgi <command>`."""
    app.cli.add_command(show_config)
    app.cli.add_command(count_todos)
