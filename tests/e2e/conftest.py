"""Fixtures of the tests that run real servers."""
from __future__ import annotations

import pytest

from tests.support import postgres_schema_url


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL schema for one test, dropped afterwards."""
    with postgres_schema_url() as url:
        yield url
