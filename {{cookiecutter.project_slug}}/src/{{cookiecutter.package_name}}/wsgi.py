"""The WSGI entry point named by the Procfile's web line."""

import codecs

from . import create_app

app = create_app()

# gunicorn imports this module in its master (preload_app) and forks the workers from it, so
# what every request needs is done here, once and shared, rather than on each worker's first
# request: the URL map compiled, and the codec werkzeug checks each request's Host with.
app.url_map.update()
codecs.lookup("idna")
