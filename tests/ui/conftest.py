"""Fixtures of the console's tests."""
from __future__ import annotations

import pytest

from tests.support.browser import MISSING, started_browser


@pytest.fixture
def browser():
    if MISSING:
        pytest.skip("chromium and chromedriver are not installed")
    yield from started_browser()
