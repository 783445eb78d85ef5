"""Shared fixtures: the same tests run on real SQLite (a WAL file) and real PostgreSQL.

PostgreSQL: ``SLM_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``);
each test gets its own schema, dropped afterwards. An unreachable server skips the
PostgreSQL cases, unless ``SLM_REQUIRE_POSTGRES=1`` (set by ``make test``), which makes
them fail.
"""
from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

PG_URL = os.environ.get("SLM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("SLM_REQUIRE_POSTGRES") == "1"
ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"

_PG_PROBLEM: list = []


# What `make test-ahead` sets to run a process under libfaketime: a child process that must
# keep the real clock is started without them (the browser, tests/test_browser.py).
FAKETIME_VARIABLES = ("LD_PRELOAD", "FAKETIME", "DONT_FAKE_MONOTONIC")


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


def _postgres_problem() -> str | None:
    try:
        import psycopg2
    except ImportError:
        return "psycopg2 is not installed"
    try:
        psycopg2.connect(PG_URL, connect_timeout=3).close()
    except psycopg2.Error as exc:
        return f"PostgreSQL at {PG_URL} is unreachable: {' '.join(str(exc).split())}"
    return None


def postgres_schema_url():
    """A context that yields a URL to a fresh PostgreSQL schema and drops it afterwards."""
    from contextlib import contextmanager

    @contextmanager
    def schema_url():
        if not _PG_PROBLEM:
            _PG_PROBLEM.append(_postgres_problem())
        if _PG_PROBLEM[0]:
            if REQUIRE_PG:
                pytest.fail(f"{_PG_PROBLEM[0]} (SLM_REQUIRE_POSTGRES=1)")
            pytest.skip(f"{_PG_PROBLEM[0]}; set SLM_TEST_POSTGRES_URL")
        import psycopg2

        schema = f"slm_test_{uuid.uuid4().hex[:12]}"
        admin = psycopg2.connect(PG_URL)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'CREATE SCHEMA "{schema}"')
        sep = "&" if "?" in PG_URL else "?"
        try:
            yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
        finally:
            with admin.cursor() as cur:
                cur.execute(f'DROP SCHEMA "{schema}" CASCADE')
            admin.close()

    return schema_url()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'slm.db'}"
        return
    with postgres_schema_url() as pg_url:
        yield pg_url


class WallClock:
    """The service's idea of "now", set by the test (real time is used where it matters)."""

    def __init__(self, at: str = "2026-11-02T12:00:00Z"):
        self.at = datetime.fromisoformat(at.replace("Z", "+00:00"))

    def __call__(self) -> datetime:
        return self.at

    def set(self, at: str) -> None:
        self.at = datetime.fromisoformat(at.replace("Z", "+00:00"))

    def forward(self, **delta) -> None:
        self.at += timedelta(**delta)


@pytest.fixture
def wall():
    return WallClock()


def fact(id, type="incident.opened", time="2026-11-02T09:00:00Z", subject="INC-1", service="email",
         source="itsm/prod", **data):
    return {"id": id, "source": source, "type": type, "time": time, "subject": subject,
            "service": service, "data": data}


def fact_count(store) -> int:
    """How many facts the store holds."""
    return sum(1 for _ in store.facts())


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
