"""Data tests never download: the Debian package fetcher refuses, and no package counts as installed."""

import pytest

from nanofm.data.sources import debian


@pytest.fixture(autouse=True)
def _no_apt(monkeypatch):
    def refuse(name, *_):
        raise AssertionError(f"tests must not download {name}")

    monkeypatch.setattr(debian, "_download_and_extract", refuse)
    monkeypatch.setattr(debian, "_installed_version", lambda name: None)
