"""Shared fixtures: the same tests run on real SQLite (a WAL file) and real PostgreSQL
(``url``), and the service's "now" is a clock the test sets (``wall``). The helpers these
build on are in tests/support; each layer's own fixtures are in its conftest.py.
"""
from __future__ import annotations

import os
import threading
import time

import pytest

from tests.support import WallClock, postgres_schema_url


def _under_faketime_with_a_real_monotonic_clock() -> bool:
    return "faketime" in os.environ.get("LD_PRELOAD", "") and os.environ.get("DONT_FAKE_MONOTONIC") == "1"


if _under_faketime_with_a_real_monotonic_clock():
    # CI runs the tests that read the wall clock again two years ahead under Debian's
    # libfaketime 0.9.10 (see .ci/run). Its monotonic clock must stay real, or every timed
    # wait on a lock or event hangs; but then its clock_nanosleep turns the absolute
    # deadline of Python's time.sleep into an invalid one (EINVAL, libfaketime issue 426).
    # An event's timed wait sleeps the same time through a call it handles correctly.
    def _sleep(seconds: float) -> None:
        threading.Event().wait(seconds)

    time.sleep = _sleep


def pytest_collection_modifyitems(items):
    """Mark ``postgres`` every case that runs against PostgreSQL: the "postgresql" case of
    ``url`` and of any other fixture parametrised the same way (tests/store/test_migrations.py)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and any(value == "postgresql" for value in callspec.params.values()):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'slm.db'}"
        return
    with postgres_schema_url() as pg_url:
        yield pg_url


@pytest.fixture
def wall():
    return WallClock()
