"""The clocks read model (engine.service.clockview) reads exactly what the engine holds.

Every scenario of fixtures/scenarios, and random histories over the tests' portfolio, are run
through a real Engine; after each step the read model publishes what changed, and its
clocks and window readings are compared with ``Engine.clocks`` and ``Engine.window_reading``
read at the same instants (before, at and past the next deadline).
"""
from __future__ import annotations

import shutil
import threading
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import create_app
from engine.eval.engine import Engine
from engine.lang.loader import load_rules
from engine.lang.yamlsource import load_documents
from engine.scenarios import DEFAULT_SOURCE, RuleSetCache, _rule_change
from engine.service.clockview import ClockReadModel, Ruler
from engine.service.live import SlmService
from engine.store.store import Store
from schemas.api import ClockListSchema
from schemas.scenario import ScenarioSchema
from schemas.values import parse_instant
from tests.support import PORTFOLIO, ROOT, RULES, fact

SCENARIOS = sorted((ROOT / "fixtures" / "scenarios").glob("*.yaml"))
LOOKS = [timedelta(0), timedelta(seconds=1), timedelta(minutes=7, seconds=31), timedelta(hours=3),
         timedelta(days=2, hours=5), timedelta(days=40)]


def engine_reading(engine: Engine, wall) -> list[dict]:
    """What ``SlmService.clocks`` returned when it read the engine under the write lock."""
    deadline = engine.next_deadline()
    return engine.clocks(at=min(wall, deadline) if deadline else wall)


def assert_same(engine: Engine, model: ClockReadModel) -> int:
    view = model.publish(engine)
    base = engine.now or parse_instant("2026-11-02T00:00:00Z")
    compared = 0
    for look in LOOKS:
        wall = base + look
        expected = engine_reading(engine, wall)
        assert view.clocks(wall) == expected, f"at {wall}"
        for clock in expected[:5]:
            for name in ("service", "target", "subject"):
                assert view.clocks(wall, **{name: clock[name]}) == [
                    c for c in expected if c[name] == clock[name]]
            assert_pages(view, wall, expected, clock, expected[-1])
        compared += len(expected)
        at = view.reading_instant(wall)
        labels = set()
        for record in engine.state.book.records.values():
            window = record.clock.window
            if window is not None:
                labels.add(window.label)
                assert view.window_reading(record.target.id, window.label, at) == \
                    engine.window_reading(record.target.id, window.label, at)
        for target in engine.ruleset.targets.values():
            for label in labels | {"2026-10", "2026-11", "2026-12"}:
                assert view.window_reading(target.id, label, at) == engine.window_reading(target.id, label, at)
    return compared


FILTERS = [("service",), ("target",), ("subject",), ("service", "target"), ("service", "subject"),
           ("target", "subject"), ("service", "target", "subject")]


def assert_pages(view, wall, expected: list[dict], clock: dict, other: dict) -> None:
    """Pages of every filter combination, of ``clock``'s values and of values mixed with
    ``other``'s, at several limits: the first ``limit`` of the matching clocks in key order
    and how many match, as ``GET /v1/clocks`` served them before the view kept its indexes."""
    for names in FILTERS:
        for mixed in (False, True):
            wanted = {name: clock[name] for name in names}
            if mixed:
                wanted[names[0]] = other[names[0]]
            matching = [c for c in expected if all(c[name] == value for name, value in wanted.items())]
            for limit in (None, 1, 3, 10):
                assert view.page(wall, **wanted, limit=limit) == (matching[:limit], len(matching)), (wanted, limit)


def test_every_scenario_reads_the_same_through_the_read_model_after_every_step():
    cache = RuleSetCache()
    compared = 0
    for path in SCENARIOS:
        docs, problems = load_documents(path.read_text(encoding="utf-8"), str(path))
        assert not problems
        for doc in docs:
            scenario = ScenarioSchema().load(doc.data)
            root = (path.parent / scenario["rules"]) if scenario.get("rules") else RULES
            engine, model = Engine(cache.get(root), history=False, retain=timedelta(days=35)), ClockReadModel()
            compared += assert_same(engine, model)
            for index, raw in enumerate(scenario["facts"]):
                if "rules" in raw:
                    engine.cut_over(*_rule_change(path, doc, index, raw, cache))
                else:
                    engine.apply({"source": DEFAULT_SOURCE, **raw})
                compared += assert_same(engine, model)
                if engine.next_deadline() is not None:
                    engine.advance(engine.next_deadline())          # a tick, as the scheduler's
                    compared += assert_same(engine, model)
            if scenario.get("until"):
                engine.advance(scenario["until"])
                compared += assert_same(engine, model)
    assert compared > 500                 # the sweep compared real clocks, not empty lists


PORTFOLIO_RULES = load_rules(PORTFOLIO)
INCIDENT = ["incident.opened", "incident.acknowledged", "incident.pending", "incident.resumed",
            "incident.resolved", "incident.reopened"]
REQUEST = ["request.opened", "request.acknowledged", "request.pending", "request.resumed"]
step = st.one_of(
    st.tuples(st.just("incident"), st.sampled_from(INCIDENT), st.sampled_from(["email", "hosting"]),
              st.sampled_from(["INC-1", "INC-2", "INC-3"]), st.sampled_from(["P1", "P2", "P3"])),
    st.tuples(st.just("request"), st.sampled_from(REQUEST), st.just("service-desk"),
              st.sampled_from(["REQ-1", "REQ-2"]), st.sampled_from(["access", "hardware"])),
    st.tuples(st.just("alert"), st.sampled_from(["alert.firing", "alert.resolved"]),
              st.sampled_from(["email", "hosting"]), st.sampled_from(["fp-1", "fp-2"]),
              st.sampled_from(["EmailDown", "WebsiteDown"])),
    st.tuples(st.just("tick"), st.just(""), st.just(""), st.just(""), st.just("")),
)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.tuples(step, st.integers(-90, 600)), min_size=1, max_size=25))
def test_random_histories_read_the_same_through_the_read_model(steps):
    """Facts of every clock role, late facts (a step may go back in time), alerts and ticks."""
    engine, model = Engine(PORTFOLIO_RULES, history=False), ClockReadModel()
    at = parse_instant("2026-11-06T15:00:00Z")              # a Friday afternoon: office hours end
    for number, ((kind, type_, service, subject, extra), minutes) in enumerate(steps):
        at += timedelta(minutes=minutes)
        if kind == "tick":
            if engine.next_deadline() is not None:
                engine.advance(engine.next_deadline())
        else:
            data = {"alertname": extra} if kind == "alert" else {
                "priority": extra} if kind == "incident" else {"category": extra}
            engine.apply({"id": f"f{number}", "source": "t", "type": type_, "time": at.isoformat(),
                          "subject": subject, "service": service, "data": data})
        assert_same(engine, model)


def test_the_views_order_is_kept_through_large_and_small_writes():
    """An unfiltered page is a slice of the view's ordered keys: sorted once when a write
    touches many clocks (here 400 opened at once), kept one by one when it touches few."""
    engine, model = Engine(PORTFOLIO_RULES, history=False), ClockReadModel()
    at = parse_instant("2026-11-02T09:00:00Z")
    for n in range(400):
        engine.apply({"id": f"o{n}", "source": "t", "type": "incident.opened", "time": at.isoformat(),
                      "subject": f"INC-{(n * 7919) % 400}", "service": "email", "data": {"priority": "P2"}})
    view = model.publish(engine)
    assert len(view.order) == len(view.running) >= 800 and list(view.order) == sorted(view.running.keys())
    for n, type_ in enumerate(["incident.resolved", "incident.opened", "incident.resolved"]):
        at += timedelta(minutes=1)
        engine.apply({"id": f"s{n}", "source": "t", "type": type_, "time": at.isoformat(),
                      "subject": "INC-0" if n != 1 else "INC-NEW", "service": "email", "data": {"priority": "P2"}})
        view = model.publish(engine)
        assert list(view.order) == sorted(view.running.keys())
        assert view.page(at, limit=10) == (engine_reading(engine, at)[:10], len(engine_reading(engine, at)))
    assert "email-p2-resolution/INC-NEW" in view.order and "email-p2-resolution/INC-0" not in view.order


def test_a_ruler_counts_as_the_calendar_does_across_days_either_side_of_its_anchor():
    calendar = PORTFOLIO_RULES.targets["email-p2-response"].calendar             # office hours, Europe/London
    ruler = Ruler(calendar, parse_instant("2026-11-04T13:20:00Z"))
    instants = [parse_instant(t) for t in ("2026-10-20T07:59:59Z", "2026-10-25T01:30:00Z", "2026-11-02T09:00:00Z",
                                           "2026-11-04T13:20:00Z", "2026-11-06T17:59:00Z", "2026-12-24T12:00:00Z")]
    for a in instants:
        for b in instants:
            if a <= b:
                assert ruler.at(b) - ruler.at(a) == calendar.counted(a, b)



# ---- the live service: SQLite and PostgreSQL ---------------------------------------------

def under_the_lock(service) -> list[dict]:
    """What ``SlmService.clocks`` answered before the read model: the engine, read under the
    write lock at the service's reading instant."""
    with service.state.write_lock:
        now = service.now()
        clocks = service.state.engine.clocks(at=service.engine_reads.reading_instant())
    return [{**c, "as_of": now.strftime("%Y-%m-%dT%H:%M:%SZ")} for c in clocks]


def windows_under_the_lock(service) -> dict:
    with service.state.write_lock:
        at = service.engine_reads.reading_instant()
        return {(t, label): service.state.engine.window_reading(t, label, at)
                for t in service.state.ruleset.targets for label in ("2026-10", "2026-11")}


def windows_read(service) -> dict:
    view = service.engine_reads.clock_view()
    at = view.reading_instant(service.now())
    return {(t, label): view.window_reading(t, label, at) for t in service.state.ruleset.targets
            for label in ("2026-10", "2026-11")}


@pytest.fixture
def served(url, wall, tmp_path):
    """A service on a copy of the portfolio; ``restart()`` stops it and starts another
    on the same database, as the next process would."""
    rules = tmp_path / "rules"
    shutil.copytree(PORTFOLIO, rules)
    running = []

    def start(snapshot_every=0):
        store = Store.open(url)
        service = SlmService(store, rules, now=wall, snapshot_every=snapshot_every)
        service.start(background=False)
        running.append(service)
        return service

    def restart():
        running[-1].stop()
        running[-1].store.close()
        return start(snapshot_every=2)

    yield start, restart, rules
    for service in running:
        service.stop()
        service.store.close()


def test_the_service_reads_what_its_engine_holds_after_ingest_tick_reload_and_restart(served, wall):
    start, restart, rules = served
    service = start()
    assert service.engine_reads.clocks() == under_the_lock(service) == []

    wall.set("2026-11-06T16:05:00Z")                      # Friday: office-hours clocks too
    service.facts.ingest([fact("i1", time="2026-11-06T16:00:00Z", priority="P1"),
                          fact("i2", time="2026-11-06T16:01:00Z", subject="INC-2", priority="P2"),
                          fact("a1", type="alert.firing", time="2026-11-06T16:02:00Z", subject="fp-1",
                               source="alertmanager", alertname="EmailDown"),
                          fact("r1", type="request.opened", time="2026-11-06T16:03:00Z", subject="REQ-1",
                               service="service-desk", category="access")])
    after_ingest = service.engine_reads.clocks()
    assert {c["clock"] for c in after_ingest} >= {"email-p1-response/INC-1", "email-p2-response/INC-2",
                                                 "desk-request-response/REQ-1"}
    assert after_ingest == under_the_lock(service)
    assert windows_read(service) == windows_under_the_lock(service)

    wall.set("2026-11-06T16:40:00Z")
    service.deadlines.tick()                               # P1 warnings and breach fire (here, or
    assert service.store.list_decisions(subject="INC-1", kind="breach")[0]   # already by the scheduler)
    assert service.engine_reads.clocks() == under_the_lock(service)
    assert service.engine_reads.clocks(subject="INC-1") == [c for c in under_the_lock(service)
                                                            if c["subject"] == "INC-1"]

    service.facts.ingest([fact("i3", type="incident.pending", time="2026-11-06T16:41:00Z", subject="INC-2"),
                          fact("i0", time="2026-11-06T16:10:00Z", subject="INC-3", priority="P1")])   # a late P1
    assert service.engine_reads.clocks() == under_the_lock(service)

    email = rules / "services" / "email.yaml"
    email.write_text(email.read_text().replace("    goal: 15m\n", "    goal: 20m\n    on_change: reprice\n"))
    wall.set("2026-11-06T16:45:00Z")
    service.rules.reload()
    repriced = {c["clock"]: c for c in service.engine_reads.clocks()}
    assert repriced["email-p1-response/INC-3"]["budget"] == "20m"
    assert service.engine_reads.clocks() == under_the_lock(service)
    assert windows_read(service) == windows_under_the_lock(service)

    before = service.engine_reads.clocks()
    service = restart()
    assert service.engine_reads.clocks() == under_the_lock(service) == before
    assert windows_read(service) == windows_under_the_lock(service)
    wall.set("2026-11-09T10:30:00Z")                       # Monday: the office opened again
    service.deadlines.tick()
    assert service.engine_reads.clocks() == under_the_lock(service)
    assert service.engine_reads.clocks() != before


def test_clocks_are_read_while_another_thread_holds_the_write_lock(served, wall):
    start, _, _ = served
    service = start()
    wall.set("2026-11-02T09:05:00Z")
    service.facts.ingest([fact("i1", priority="P1")])
    held, release, read = threading.Event(), threading.Event(), {}

    def writer():                                  # as a long write would: holds the lock until told
        with service.state.write_lock:
            held.set()
            release.wait()

    def reader():
        held.wait()
        read["clocks"] = service.engine_reads.clocks(subject="INC-1")
        read["report"] = service.engine_reads.compliance("email", "2026-11")
        read["deadline"] = service.engine_reads.clock_view().next_deadline
        read["lock still held"] = not release.is_set()
        release.set()

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)                    # only against a hang if the read waited
    release.set()
    assert read.get("lock still held") is True       # the reads finished while the lock was held
    assert [c["counted"] for c in read["clocks"] if c["target"] == "email-p1-response"] == ["5m"]
    assert read["report"]["service"] == "email"
    assert read["deadline"] == service.state.engine.next_deadline()


def test_get_clocks_answers_exactly_what_its_schema_would_dump(served, wall):
    start, _, _ = served
    service = start()
    wall.set("2026-11-06T16:05:00Z")
    service.facts.ingest([fact(f"i{n}", time="2026-11-06T16:00:00Z", subject=f"INC-{n}", priority=("P1", "P2")[n % 2])
                          for n in range(6)])
    client = create_app(service).test_client()
    headers = {"Authorization": f"Bearer {service.store.add_token('auditor')}"}
    body = client.get("/v1/clocks?limit=5", headers=headers).json
    assert len(body["items"]) == 5 and body["total"] == len(service.engine_reads.clocks()) > 5
    assert ClockListSchema().dump(body) == body
    assert body["items"] == service.engine_reads.clocks()[:5]
