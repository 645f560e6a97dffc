"""The version of nanofm (one place: the package and pyproject.toml read it)."""

__version__ = "0.1.0"
