"""The service without HTTP: ingestion, live deadlines, restart recovery, reloads.

Real engine over the tests' portfolio of rules, real SQLite and PostgreSQL. "Now" is a
clock the test sets (``wall``), except where the scheduler must fire on the real wall clock.
"""
from __future__ import annotations

import gc
import shutil
import threading
import time
import weakref
from datetime import UTC, datetime, timedelta

import pytest

from engine.eval.state import STATE_FORMAT
from engine.lang.errors import FactError, RuleSetError
from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import PORTFOLIO, fact, fact_count

pytestmark = pytest.mark.wallclock     # reads this machine's clock: CI runs it again years ahead

P1 = {"priority": "P1"}


@pytest.fixture
def make_service(url, wall):
    """Start services on one database, as successive processes would."""
    opened = []

    def make(rules=PORTFOLIO, now=wall, background=False, snapshot_every=0):
        store = Store.open(url)
        service = SlmService(store, rules, now=now, history=True, snapshot_every=snapshot_every)
        service.start(background=background)
        if hasattr(now, "forward"):
            # The test moves this clock (a WallClock) in jumps and fires what falls due
            # through its own requests; the deadline scheduler would race it for every jump.
            service.scheduler.stop()
        opened.append(service)
        return service

    yield make
    for service in opened:
        service.stop()
        service.store.close()


def path(decisions):
    """Warnings, breaches, mets and retractions (not escalations) as (kind, at)."""
    return [(d["kind"], d["at"]) for d in decisions if d["kind"] in ("warning", "breach", "met", "retracted")]


def kinds(service, **filters):
    items, _ = service.store.list_decisions(**filters, limit=1000)
    return path(items)


def all_decisions(store):
    items, _ = store.list_decisions(limit=1000)
    return items


def test_a_fact_is_stored_evaluated_and_its_due_deadlines_fire(make_service, wall):
    service = make_service()
    wall.set("2026-11-02T09:05:00Z")
    result = service.facts.ingest([fact("f1", **P1)])
    assert result.results == [{"id": "f1", "source": "itsm/prod", "status": "accepted", "decisions": []}]
    assert kinds(service, target="email-p1-response") == []

    wall.set("2026-11-02T09:20:00Z")
    fired = service.deadlines.tick()
    expected = [("warning", "2026-11-02T09:07:30Z"), ("warning", "2026-11-02T09:11:15Z"),
                ("breach", "2026-11-02T09:15:00Z")]
    assert path(d for d in fired.decisions if d["target"] == "email-p1-response") == expected
    assert kinds(service, target="email-p1-response") == expected
    notes, _ = service.store.list_notifications(limit=1000)
    assert {n["decision"] for n in notes} <= {d["id"] for d in all_decisions(service.store)}
    assert any(n["activity"] == "breach-handling" for n in notes)
    assert service.deadlines.tick().decisions == []  # nothing is decided twice


def test_a_fact_posted_after_its_deadlines_fires_them_at_once(make_service, wall):
    service = make_service()
    wall.set("2026-11-02T09:30:00Z")
    result = service.facts.ingest([fact("f1", **P1)])
    assert ("breach", "2026-11-02T09:15:00Z") in path(d for d in result.decisions
                                                      if d["target"] == "email-p1-response")
    # made due by this fact's arrival (its clocks started at 09:00, 30 minutes ago): its own
    ids = [d["id"] for d in result.decisions]
    assert len(ids) == 11 and result.results[0]["decisions"] == ids
    stored = service.store.list_facts(limit=10)[0][0]
    assert stored["outcome"] == ids
    assert all(d["rule"]["ruleset"] == service.state.ruleset.version for d in result.decisions)


def test_each_fact_of_a_batch_owns_the_decisions_it_caused(make_service, wall):
    """A deadline of INC-1 that falls before INC-2 is applied belongs to INC-1's fact, not
    to the fact whose event time happened to pass it; and a deadline of a clock an earlier
    request started belongs to no fact of this one."""
    service = make_service()
    wall.set("2026-11-02T09:05:00Z")
    service.facts.ingest([fact("f0", **{**P1, "subject": "INC-0", "time": "2026-11-02T09:00:00Z"})])
    wall.set("2026-11-02T10:00:00Z")
    first = {**P1, "subject": "INC-1", "time": "2026-11-02T09:00:00Z"}
    second = {**P1, "subject": "INC-2", "time": "2026-11-02T09:50:00Z"}
    result = service.facts.ingest([fact("f1", **first), fact("f2", **second)])
    by_id = {d["id"]: d for d in result.decisions}
    owned = [set(r["decisions"]) for r in result.results]
    clocks = {i for i, d in by_id.items() if d["kind"] in ("warning", "breach", "escalation", "met")}
    assert owned[0] and all(by_id[i]["subject"] == "INC-1" for i in owned[0] & clocks)
    assert owned[1] and all(by_id[i]["subject"] == "INC-2" for i in owned[1] & clocks)
    unowned = set(by_id) - owned[0] - owned[1]
    assert unowned and all(by_id[i]["subject"] == "INC-0" for i in unowned)
    # the third breach completes the improvement rule's count: the proposal is INC-2's
    proposal = next(i for i, d in by_id.items() if d["kind"] == "improvement-proposed")
    assert proposal in owned[1]
    stored = {f["fact"]["id"]: f["outcome"] for f in service.store.list_facts(limit=10)[0]}
    assert set(stored["f1"]) == owned[0] and set(stored["f2"]) == owned[1]


def test_a_duplicate_returns_the_original_outcome_and_changes_nothing(make_service, wall):
    service = make_service()
    wall.set("2026-11-02T09:30:00Z")
    service.facts.ingest([fact("f1", **P1)])
    ack = service.facts.ingest([fact("f2", type="incident.acknowledged", time="2026-11-02T09:10:00Z")])
    assert path(d for d in ack.decisions if d["target"] == "email-p1-response")[-1] == ("met", "2026-11-02T09:10:00Z")
    before = (fact_count(service.store), service.store.decision_count())
    again = service.facts.ingest([fact("f2", type="incident.acknowledged", time="2026-11-02T09:10:00Z")])
    assert again.results[0]["status"] == "duplicate"
    assert again.results[0]["decisions"] == ack.results[0]["decisions"]
    assert again.decisions == []
    assert (fact_count(service.store), service.store.decision_count()) == before


def test_one_bad_fact_rejects_the_whole_request_naming_each_field(make_service, wall):
    service = make_service()
    good = fact("f1", **P1)
    future = fact("f2", time="2026-11-02T12:06:00Z")          # wall is 12:00, skew 5m
    unknown = fact("f3", service="mail")
    broken = {"id": "f4", "source": "itsm/prod", "type": "incident opened", "time": "yesterday"}
    with pytest.raises(FactError) as err:
        service.facts.ingest([good, future, unknown, broken])
    details = err.value.details
    assert "6m ahead of the server clock" in details["[1].time"][0]
    assert "unknown service 'mail'" in details["[2].service"][0]
    assert "not a dotted type name" in details["[3].type"][0]
    assert "not an RFC 3339 time" in details["[3].time"][0]
    assert fact_count(service.store) == 0 and service.store.decision_count() == 0
    assert service.facts.ingest([fact("f2", time="2026-11-02T12:05:00Z")]).accepted == 1  # at the limit


def test_a_failed_write_stores_nothing_and_the_engine_follows_the_store(make_service, wall, monkeypatch):
    service = make_service()
    wall.set("2026-11-02T09:30:00Z")
    real = service.store.add_notifications

    def fail(notifications, due=None):
        raise RuntimeError("disk full")

    monkeypatch.setattr(service.store, "add_notifications", fail)
    with pytest.raises(RuntimeError):
        service.facts.ingest([fact("f1", **P1)])
    assert fact_count(service.store) == 0 and service.store.decision_count() == 0
    monkeypatch.setattr(service.store, "add_notifications", real)
    retry = service.facts.ingest([fact("f1", **P1)])     # not a duplicate: nothing was stored
    assert retry.results[0]["status"] == "accepted"
    assert {d["id"] for d in retry.decisions} == {d["id"] for d in all_decisions(service.store)}


def test_restart_rebuilds_state_and_fires_missed_deadlines_once(make_service, wall):
    first = make_service()
    wall.set("2026-11-02T09:05:00Z")
    first.facts.ingest([fact("f1", **P1), fact("f2", subject="INC-2", time="2026-11-02T09:01:00Z", **P1)])
    first.facts.ingest([fact("f3", type="incident.acknowledged", subject="INC-2", time="2026-11-02T09:04:00Z")])
    first.stop()
    assert kinds(first, kind="breach") == []

    wall.set("2026-11-02T09:20:00Z")                      # down for 15 minutes
    second = make_service()
    assert second.state.ready.is_set() and second.state.replayed == 3  # no snapshot: a full replay
    breaches = kinds(second, target="email-p1-response", kind="breach")
    assert breaches == [("breach", "2026-11-02T09:15:00Z")]     # INC-1 only: INC-2 was acked
    count = second.store.decision_count()
    second.stop()

    third = make_service()                                # same wall time: nothing new
    assert third.store.decision_count() == count
    assert {d["id"] for d in all_decisions(third.store)} <= set(third.state.engine.state.history.decisions_by_id)
    assert third.store.verify_chain()["ok"]


def test_replay_repeats_ticks_so_late_facts_reconcile_as_they_did_live(make_service, wall):
    live = make_service()
    wall.set("2026-11-02T09:20:00Z")
    live.facts.ingest([fact("f1", **P1)])                 # breach fired at 09:15 by catch-up
    late = live.facts.ingest([fact("f2", type="incident.acknowledged", time="2026-11-02T09:10:00Z")])
    assert "retracted" in [d["kind"] for d in late.decisions]
    live.stop()

    replayed = make_service()
    assert replayed.state.replayed == 2
    stored = {d["id"] for d in all_decisions(replayed.store)}
    assert stored == set(replayed.state.engine.state.history.decisions_by_id)    # same decisions, same ids
    assert replayed.store.decision_count() == len(stored)


def test_a_restart_from_a_snapshot_is_the_state_a_full_replay_gives(make_service, wall):
    live = make_service(snapshot_every=5)
    batches = [[fact(f"o{n}", subject=f"INC-{n}", time=f"2026-11-02T09:{n:02d}:00Z", **P1),
                fact(f"a{n}", type="incident.acknowledged", subject=f"INC-{n}",
                     time=f"2026-11-02T09:{n + (3 if n % 2 else 20):02d}:00Z")] for n in range(0, 30, 3)]
    for n, batch in enumerate(batches):
        wall.set(f"2026-11-02T09:{3 * n + 21:02d}:30Z")
        live.facts.ingest(batch)               # late acks, ticks between them, snapshots every 5
        live.keeper.wait_for_snapshot()        # each stored before the next write (made beside the writer)
    live.facts.ingest([fact("late", type="incident.acknowledged", subject="INC-0", time="2026-11-02T09:01:00Z")])
    live.keeper.wait_for_snapshot()
    assert live.store.latest_snapshot(live.state.ruleset.version, STATE_FORMAT)["fact_seq"] == 18
    live.state.engine = None                   # a crash: no snapshot at stop

    restored = make_service(snapshot_every=5)
    assert restored.state.replayed == 3        # the facts after the last snapshot
    full = make_service(snapshot_every=0)
    assert full.state.replayed == 21
    assert restored.state.engine.clocks() == full.state.engine.clocks()
    wall.set("2026-11-03T12:00:00Z")
    assert [d["id"] for d in restored.deadlines.tick().decisions] == [
        d.id for d in full.state.engine.advance(wall()).decisions]


def test_an_unusable_snapshot_is_ignored_and_everything_replayed(make_service, wall, caplog):
    live = make_service(snapshot_every=1)
    wall.set("2026-11-02T09:05:00Z")
    live.facts.ingest([fact("f1", **P1)])
    live.facts.ingest([fact("f2", subject="INC-2", **P1)])
    live.keeper.wait_for_snapshot()
    S = live.store.m.Snapshot
    S.update(body=b"not a snapshot").execute()
    restarted = make_service(snapshot_every=1)
    assert restarted.state.replayed == 2 and "ignoring the snapshot" in caplog.text
    assert {c["clock"] for c in restarted.state.engine.clocks()} == {c["clock"] for c in live.state.engine.clocks()}


def test_reload_swaps_rules_atomically_and_a_bad_set_changes_nothing(make_service, wall, tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(PORTFOLIO, rules)
    service = make_service(rules=rules)
    old = service.state.ruleset.version
    wall.set("2026-11-02T09:05:00Z")
    service.facts.ingest([fact("f1", **P1)])

    email = rules / "services" / "email.yaml"
    text = email.read_text()
    email.write_text(text.replace("goal: 15m", "goal: 15 minutes"))
    with pytest.raises(RuleSetError) as err:
        service.rules.reload()
    assert "services/email.yaml:" in err.value.report()
    assert service.state.ruleset.version == old

    email.write_text(text.replace("goal: 15m", "goal: 20m"))
    assert service.rules.reload().version != old
    service.facts.ingest([fact("f2", **{**P1, "subject": "INC-2", "time": "2026-11-02T09:06:00Z"})])
    wall.set("2026-11-02T09:30:00Z")
    service.deadlines.tick()
    breach = [d for d in all_decisions(service.store) if d["target"] == "email-p1-response" and d["kind"] == "breach"]
    # the clock running at the change keeps the 15m it started with; the next one has 20m
    assert [(d["subject"], d["at"], d["rule"]["ruleset"]) for d in breach] == [
        ("INC-1", "2026-11-02T09:15:00Z", old), ("INC-2", "2026-11-02T09:26:00Z", service.state.ruleset.version)]
    latest = service.store.db.execute_sql("SELECT hash FROM rulesets ORDER BY generation DESC LIMIT 1")
    assert latest.fetchone()[0] == service.state.ruleset.version
    assert [c["ruleset"] for c in service.store.cutovers()] == [old, service.state.ruleset.version]


class _Cyclic:
    """Stands for the cyclic parts of an engine (schemas, closures): freed only by the collector."""

    def __init__(self):
        self.me = self


@pytest.mark.slow
def test_a_frozen_heap_still_lets_a_replaced_network_go(url, wall, tmp_path):
    """freeze_heap (what `slm serve` runs with) hides the engine from the collector; the
    cyclic parts of the matching network a reload replaces must be thawed and collected,
    not leaked."""
    rules = tmp_path / "rules"
    shutil.copytree(PORTFOLIO, rules)
    store = Store.open(url)
    service = SlmService(store, rules, now=wall, freeze_heap=True, snapshot_every=1)
    try:
        service.start(background=False)
        part = _Cyclic()
        service.state.engine.context.network.networks[0].cyclic_part = part
        gone = weakref.ref(part)
        del part
        wall.set("2026-11-02T09:05:00Z")
        frozen = gc.get_freeze_count()
        service.facts.ingest([fact("f1", **P1)])          # a snapshot, then a fresh freeze
        assert gc.get_freeze_count() > frozen
        email = rules / "services" / "email.yaml"
        email.write_text(email.read_text().replace("goal: 15m", "goal: 20m"))
        service.rules.reload()
        assert gone() is None
        assert gc.get_freeze_count() > 0
        assert service.engine_reads.clocks(subject="INC-1")  # the engine still runs the incident's clocks
    finally:
        service.stop()
        store.close()
        gc.unfreeze()


@pytest.mark.slow
def test_the_scheduler_fires_a_deadline_at_its_wall_clock_instant(url):
    store = Store.open(url)
    service = SlmService(store, PORTFOLIO)                    # the real wall clock
    service.start(background=True)
    try:
        assert service.state.ready.wait(30)
        opened = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=15) + timedelta(seconds=2)
        stamp = opened.strftime("%Y-%m-%dT%H:%M:%SZ")
        service.facts.ingest([fact("f1", time=stamp, **P1)])
        deadline = (opened + timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M:%SZ")
        waited = time.monotonic()
        while time.monotonic() - waited < 20:
            if ("breach", deadline) in kinds(service, target="email-p1-response"):
                break
            time.sleep(0.1)
        assert kinds(service, target="email-p1-response", kind="breach") == [("breach", deadline)]
        fired_at = datetime.now(UTC)
        assert fired_at >= opened + timedelta(minutes=15)
    finally:
        service.stop()
        store.close()


def test_concurrent_ingestion_stores_every_fact_once_with_an_intact_chain(make_service, wall):
    service = make_service()
    wall.set("2026-11-02T10:00:00Z")
    errors = []

    def post(worker):
        try:
            for n in range(15):
                minute = f"{n:02d}"
                service.facts.ingest([fact(f"w{worker}-{n}", subject=f"INC-{worker}-{n}",
                                           time=f"2026-11-02T09:{minute}:00Z", **P1),
                                      fact(f"w{worker}-{n}", subject=f"INC-{worker}-{n}",
                                           time=f"2026-11-02T09:{minute}:00Z", **P1)])
        except Exception as exc:          # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=post, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert fact_count(service.store) == 60
    ids = [d["id"] for d in all_decisions(service.store)]
    assert len(ids) == len(set(ids)) > 0
    assert service.store.verify_chain() == {"ok": True, "checked": len(ids), "first_broken": None}


def test_clocks_report_counted_remaining_and_next_deadline(make_service, wall):
    service = make_service()
    wall.set("2026-11-02T09:05:00Z")
    service.facts.ingest([fact("f1", **P1)])
    clock = {c["target"]: c for c in service.engine_reads.clocks("email")}["email-p1-response"]
    assert clock["subject"] == "INC-1"
    assert (clock["counted"], clock["remaining"], clock["budget"]) == ("5m", "10m", "15m")
    assert clock["next_deadline"] == "2026-11-02T09:07:30Z"
    assert clock["as_of"] == "2026-11-02T09:05:00Z"


def test_a_month_is_counted_in_each_targets_own_timezone():
    """23:30 UTC on 30 June is still June round the clock (UTC), but July in London (BST)."""
    from engine.lang.loader import load_rules
    from engine.service.reports import compliance

    ruleset = load_rules(PORTFOLIO)
    assert ruleset.targets["email-p2-response"].calendar.timezone == "Europe/London"
    assert ruleset.targets["email-p1-response"].calendar.timezone == "UTC"
    decisions = [{"id": f"d-{target}", "kind": "met", "target": target, "subject": "INC-1", "cycle": 1,
                  "at": "2026-06-30T23:30:00Z"} for target in ("email-p1-response", "email-p2-response")]

    def met(period):
        rows = compliance(ruleset, decisions, "email", period)["targets"]
        return {r["target"]: r["met"] for r in rows if r["target"] in ("email-p1-response", "email-p2-response")}

    assert met("2026-06") == {"email-p1-response": 1, "email-p2-response": 0}
    assert met("2026-07") == {"email-p1-response": 0, "email-p2-response": 1}
