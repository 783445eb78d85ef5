"""API nodes and workers without HTTP: an API node (``role="api"``) stores facts that the
owner (``role="all"`` or ``"worker"``) evaluates later, on one PostgreSQL database.

What the owner decides from facts an API node stored must be exactly what one process
decides from the same facts posted to it directly: the same decisions, with the same ids.
"""
from __future__ import annotations

import shutil
import time
from datetime import timedelta

import pytest

from engine.lang.errors import FactError
from engine.service.batch import FactConflict
from engine.service.live import SlmService
from engine.service.state import NoEngineHere
from engine.store.store import Store
from tests.support import PORTFOLIO, fact, postgres_schema_url
from tests.support.waiting import PATIENCE, until

pytestmark = pytest.mark.postgres

P1 = {"priority": "P1"}


@pytest.fixture
def database():
    with postgres_schema_url() as url:
        yield url


@pytest.fixture
def nodes(database, wall):
    made = []

    def start(role: str, **options) -> SlmService:
        store = Store.open(database)
        service = SlmService(store, PORTFOLIO, now=wall, role=role, **options)
        service.start(background=False)
        made.append(service)
        return service

    yield start
    for service in made:
        service.stop()
        service.store.close()


INCIDENT = [fact("f1", **P1), fact("f2", type="incident.acknowledged", time="2026-11-02T09:10:00Z"),
            fact("f3", subject="INC-2", time="2026-11-02T09:20:00Z", priority="P2")]


def test_what_an_api_node_stores_the_owner_decides_exactly_as_one_process_would(nodes, wall, tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'alone.db'}") as alone_store:
        alone = SlmService(alone_store, PORTFOLIO, now=wall)
        alone.start(background=False)
        expected = alone.facts.ingest(list(INCIDENT))
        alone.stop()

    api = nodes("api")
    stored = api.facts.ingest(list(INCIDENT))
    assert [(r["id"], r["status"], r["evaluated"]) for r in stored.results] == [
        ("f1", "accepted", False), ("f2", "accepted", False), ("f3", "accepted", False)]
    assert all(isinstance(r["seq"], int) for r in stored.results) and stored.decisions == []

    owner = nodes("all")
    until(lambda: owner.store.pending_count() == 0, "the owner to evaluate what the API node stored")
    waited = api.facts.ingest(list(INCIDENT), wait=timedelta(seconds=5))   # now duplicates, evaluated
    assert [r["status"] for r in waited.results] == ["duplicate"] * 3
    assert [r["decisions"] for r in waited.results] == [r["decisions"] for r in expected.results]
    decided = owner.store.decisions_by_id(d["id"] for d in expected.decisions)
    assert [decided.get(d["id"]) for d in expected.decisions] == expected.decisions
    assert owner.store.verify_audit()["ok"]


def test_an_api_node_waits_for_the_owner_and_lists_what_it_decided(nodes, wall):
    owner = nodes("all")
    api = nodes("api")
    answered = api.facts.ingest([fact("f1", **P1)], wait=timedelta(seconds=PATIENCE))
    entry = answered.results[0]
    assert entry["status"] == "accepted" and entry["evaluated"] and entry["decisions"]
    assert [d["id"] for d in answered.decisions] == entry["decisions"]
    assert owner.store.find_facts({("itsm/prod", "f1")}) == {("itsm/prod", "f1"): entry["decisions"]}


def test_without_an_owner_the_wait_runs_out_and_the_facts_stay_pending(nodes):
    api = nodes("api")
    started = time.monotonic()
    answered = api.facts.ingest([fact("f1", **P1)], wait=timedelta(seconds=1))
    assert time.monotonic() - started >= 1 and not answered.results[0]["evaluated"]
    assert api.store.pending_count() == 1


def test_an_api_node_refuses_as_the_owner_would_and_stores_nothing_then(nodes):
    api = nodes("api")
    api.facts.ingest([fact("f1", **P1)])
    with pytest.raises(FactConflict):
        api.facts.ingest([fact("f1", priority="P3")])
    with pytest.raises(FactError, match=r"\[1\]\.service"):
        api.facts.ingest([fact("f2"), fact("f3", service="nope")])
    with pytest.raises(FactError, match="time"):        # far behind its subject's newest time
        api.facts.ingest([fact("f4", time="2026-10-01T09:00:00Z")])
    assert api.store.pending_count() == 1


def test_an_api_node_has_no_engine_to_read_clocks_from_or_change(nodes):
    api = nodes("api")
    assert api.state.ready.is_set() and api.state.engine is None
    for read in (lambda: api.engine_reads.clocks(), lambda: api.engine_reads.compliance("email", "2026-11"),
                 lambda: api.engine_reads.clock_timeline("email-p1-resolution", "INC-1"), api.rules.reload):
        with pytest.raises(NoEngineHere, match="--role all"):
            read()


def test_an_api_node_validates_against_the_rules_the_owner_put_in_force(database, wall, nodes, tmp_path,
                                                                         monkeypatch):
    from engine.service import intake
    monkeypatch.setattr(intake, "RULES_CHECK_SECONDS", 0.0)
    rules = tmp_path / "rules"
    shutil.copytree(PORTFOLIO, rules)
    owner_store = Store.open(database)
    owner = SlmService(owner_store, rules, now=wall)
    owner.start(background=False)
    try:
        api = nodes("api")
        with pytest.raises(FactError, match="service"):
            api.facts.ingest([fact("w1", service="webshop")])
        hosting = (PORTFOLIO / "services" / "hosting.yaml").read_text().split("\n---\n")[0]
        (rules / "services" / "webshop.yaml").write_text(hosting.replace("id: hosting", "id: webshop"))
        owner.rules.reload()
        assert api.facts.ingest([fact("w1", service="webshop")]).results[0]["status"] == "accepted"
        assert api.state.ruleset.version == owner.state.ruleset.version
    finally:
        owner.stop()
        owner.store.close()
