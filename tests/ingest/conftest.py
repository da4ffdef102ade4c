"""Fixtures of the ingest tests: the fixture folder and a private conversion cache."""

from __future__ import annotations

import pytest

from tests.ingest.files import make_folder


@pytest.fixture
def cache(tmp_path):
    """A conversion cache of the test's own (never the user's ~/.cache)."""
    return tmp_path / "cache"


@pytest.fixture
def folder(tmp_path):
    """A folder with one file of each type, a .gitignore (and a nested one) and a .git folder."""
    return make_folder(tmp_path / "corpus")
