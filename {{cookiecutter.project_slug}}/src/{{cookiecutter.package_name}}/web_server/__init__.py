"""The web server's own code, which gunicorn.conf.py names: how the web process serves."""
