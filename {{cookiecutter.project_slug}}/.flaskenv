# Read by the `flask` command (python-dotenv) in this folder, before .env: the app that
# `flask run --debug`, `flask shell` and the admin commands load. For local use only: it
# holds no settings of the service, and the image sets FLASK_SKIP_DOTENV.
FLASK_APP={{ cookiecutter.package_name }}.wsgi
