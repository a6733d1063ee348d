"""The version of this code, and the distribution it is installed as; pyproject.toml reads the
version from here too."""

__version__ = "{{ cookiecutter.version }}"
DISTRIBUTION = "{{ cookiecutter.project_slug }}"
