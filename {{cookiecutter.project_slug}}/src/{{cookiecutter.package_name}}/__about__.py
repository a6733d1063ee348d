"""The version of this code; pyproject.toml reads it from here too."""

__version__ = "{{ cookiecutter.version }}"
