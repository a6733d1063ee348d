"""The WSGI entry point named by the Procfile's web line."""

from . import create_app

app = create_app()
