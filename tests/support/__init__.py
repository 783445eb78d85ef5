"""What the tests share besides fixtures: paths, the test's wall clock, fact builders and
PostgreSQL scratch schemas. Fixtures live in the conftest.py files; test modules import
helpers from here (tests.support and its modules), never from another test module.

PostgreSQL: ``SLM_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``);
each test gets its own schema, dropped afterwards. An unreachable server skips the
PostgreSQL cases, unless ``SLM_REQUIRE_POSTGRES=1`` (set by CI), which makes them fail.
"""
from __future__ import annotations

import os
import socket
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

PG_URL = os.environ.get("SLM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("SLM_REQUIRE_POSTGRES") == "1"
ROOT = Path(__file__).resolve().parent.parent.parent
# The shipped example rules: only for the tests that are about them (they load, lint clean,
# stay in force, render as documents, pass their scenarios). Every other test uses a rule
# set of its own (tests/rulesets/README.md): PORTFOLIO, or SMALL_RULES where it needs little.
RULES = ROOT / "rules"
PORTFOLIO = ROOT / "tests" / "rulesets" / "portfolio"

# What `make test-ahead` sets to run a process under libfaketime: a child process that must
# keep the real clock is started without them (the browser, tests/ui/test_browser.py).
FAKETIME_VARIABLES = ("LD_PRELOAD", "FAKETIME", "DONT_FAKE_MONOTONIC")

_PG_PROBLEM: list = []


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




def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (until someone binds it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

def named_sessions(url: str) -> tuple[str, str]:
    """``url`` with an ``application_name`` of its own, and that name: the sessions of a
    store opened on it, and of no other test, are the ones :func:`terminate_sessions` ends."""
    name = f"slm_test_{uuid.uuid4().hex[:12]}"
    return f"{url}{'&' if '?' in url else '?'}application_name={name}", name


def terminate_sessions(name: str) -> int:
    """End every PostgreSQL session whose ``application_name`` is ``name`` (as a restart
    or failover of the database would): how many there were."""
    import psycopg2

    admin = psycopg2.connect(PG_URL)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = %s AND pid <> pg_backend_pid()", [name])
            return len(cur.fetchall())
    finally:
        admin.close()

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


def fact(id, type="incident.opened", time="2026-11-02T09:00:00Z", subject="INC-1", service="email",
         source="itsm/prod", **data):
    return {"id": id, "source": source, "type": type, "time": time, "subject": subject,
            "service": service, "data": data}


def fact_count(store) -> int:
    """How many facts the store holds."""
    return sum(1 for _ in store.facts())


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


# One service to post facts to and nothing more: email, whose P1 incidents are to be
# acknowledged within 15 minutes. No fact catalogue: every fact type is accepted.
SMALL_RULES = """\
kind: Service
id: email
roles: {service_owner: owner@example.org, service_level_manager: slm-mail@example.org}
---
kind: Raci
id: raci
activities:
  breach-handling: {service_level_manager: R, service_owner: A}
---
kind: Escalation
id: p1-escalation
applies_to: {targets: [email-p1-response]}
levels: [{at: 100%, activity: breach-handling}]
---
kind: Agreement
id: sla-email
type: SLA
service: email
targets:
  - id: email-p1-response
    clock:
      applies_to: {type: incident.opened, where: {priority: P1}}
      stop: incident.acknowledged
    goal: 15m
"""


def small_rules(directory: Path, text: str = SMALL_RULES) -> Path:
    """A rules directory at ``directory`` whose one file is ``text``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "rules.yaml").write_text(text)
    return directory
