"""The monthly review pack, on SQLite and PostgreSQL through the running service: decided
by the engine in event time at the first business day's opening (a scheduler tick, no
cron), sent to the agreement's Accountable alone with the month's figures rendered in the
templates' sandbox, and never a second time: not by a restart from a snapshot, nor by a
rebuild that replays the whole log, nor by later ticks."""
from __future__ import annotations

import pytest

from engine.service.live import SlmService
from engine.store.store import Store
from tests.reports.conftest import CREDIT_RULES, outage, tickets
from tests.support import small_rules, utc

# CREDIT_RULES with a review pack for sla-email: its Accountable is the service owner.
PACK_RULES = CREDIT_RULES.replace("""activities:
  breach-handling: {service_level_manager: R, service_owner: A}""", """activities:
  breach-handling: {service_level_manager: R, service_owner: A}
  monthly-service-review: {service_level_manager: R, service_owner: A}""").replace(
    "customer: Finance\n", "customer: Finance\nreview_pack: {activity: monthly-service-review}\n", 1)


@pytest.fixture
def start(url, wall, tmp_path):
    """Start the service on one database, as successive processes would."""
    rules = small_rules(tmp_path / "rules", PACK_RULES)
    running = []

    def make() -> SlmService:
        for service in running:
            service.stop()
            service.store.close()
        running.clear()
        store = Store.open(url)
        service = SlmService(store, rules, now=wall, snapshot_every=0)
        service.start(background=False)
        service.scheduler.stop()          # the test moves the wall clock and ticks itself
        running.append(service)
        return service

    yield make
    for service in running:
        service.stop()
        service.store.close()


def packs(store) -> tuple[list[dict], list[dict]]:
    decisions, _ = store.list_decisions(kind="review-pack", limit=100)
    notes = [n for d in decisions for n in store.list_notifications(decision=d["id"], limit=100)[0]]
    return decisions, notes


def test_the_pack_goes_to_the_accountable_once_across_restarts_and_replays(start, wall, url):
    service = start()
    wall.set("2026-11-12T00:00:00Z")
    service.facts.ingest(tickets() + outage(1, "2026-11-10T10:00:00Z", "2026-11-10T11:00:00Z"))
    wall.set("2026-11-30T23:00:00Z")
    service.deadlines.tick()
    assert packs(service.store) == ([], [])                   # not yet: the 1st's opening is 00:00 UTC (24x7)

    wall.set("2026-12-01T00:00:05Z")
    fired = service.deadlines.tick()
    assert [(d["kind"], d["at"], d["data"]["period"]) for d in fired.decisions if d["kind"] == "review-pack"] == [
        ("review-pack", "2026-12-01T00:00:00Z", "2026-11")]
    decisions, notes = packs(service.store)
    assert [(n["recipient"], n["raci"], n["activity"]) for n in notes] == [
        ("owner@example.org", "A", "monthly-service-review")]           # the Accountable alone, not the R
    text = notes[0]["message"]
    assert text.startswith("Review pack of sla-email for Finance, service email, 2026-11\n")
    # 60 of November's 43,200 minutes down: 99.8611 %, under 99.9 %: a 10 % credit
    assert "- email-availability (goal 99.9%): availability 99.8611 %" in text
    assert "- email-p1-response (goal 15m): 2 met, 0 breached, compliance 100 %" in text
    assert "trend: 2026-06 —, 2026-07 —, 2026-08 —, 2026-09 —, 2026-10 100 %, 2026-11 99.8611 %" in text, text
    assert "Credit due: 10 % of the month's charge (decided by email-availability)" in text
    assert "ola-p1-response" not in text                             # another agreement's target
    assert "Waivers: none" in text and "Restatements: none" in text
    first = (decisions, notes)

    service = start()                                                # a restart from the stop's snapshot
    wall.set("2026-12-01T08:00:00Z")
    service.deadlines.tick()
    assert packs(service.store) == first
    service.store.db.execute_sql("DELETE FROM snapshots")            # a rebuild that replays every fact and tick
    service = start()
    service.deadlines.tick()
    assert packs(service.store) == first
    assert service.state.engine.next_deadline() == utc("2027-01-01T00:00:00Z")     # the next pack is due

    wall.set("2027-01-01T00:00:01Z")                                 # the next month's, once
    service.deadlines.tick()
    decisions, notes = packs(service.store)
    assert sorted(d["data"]["period"] for d in decisions) == ["2026-11", "2026-12"]
    assert len(notes) == 2 and len({n["id"] for n in notes}) == 2


def test_a_waiver_and_a_restatement_are_in_the_pack(start, wall):
    service = start()
    wall.set("2026-11-12T00:00:00Z")
    service.facts.ingest(outage(1, "2026-11-10T10:00:00Z", "2026-11-10T11:00:00Z"))
    owner = service.store.add_token("owner", name="alice")
    second = service.store.add_token("owner", name="bob")
    assert owner and second
    waiver = service.waivers.request({"target": "email-availability", "since": "2026-11-10T10:00:00Z",
                                      "until": "2026-11-10T10:30:00Z", "reason": "agreed failover"}, "alice")
    service.waivers.approve(waiver["id"], "bob")
    wall.set("2026-12-01T00:00:05Z")
    service.deadlines.tick()
    text = packs(service.store)[1][0]["message"]
    assert "availability 99.9305 %" in text                          # 30 of 43,170 minutes
    assert "waived: 30 min down in 30 min of service time taken out (unwaived 99.8611 %)" in text
    wall.set("2026-12-03T00:00:00Z")               # a restatement of November leaves the pack alone
    restated = service.restatements.request({"service": "email", "period": "2026-11", "reason": "check"}, "alice")
    assert restated["withdraws"] == [] and all(d["kind"] != "review-pack" for d in restated["decisions"])
    assert f"- {waiver['id']}: email-availability from 2026-11-10T10:00:00Z to 2026-11-10T10:30:00Z, " \
           "“agreed failover”, requested by alice, approved by bob" in text


def test_a_what_if_under_the_same_rules_finds_the_pack_unchanged_and_under_others_without_it(start, wall):
    """What-if replays the pack's deadline with the ticks: the rules that sent it decide it
    again at the same instant (no change); rules without ``review_pack`` show it removed."""
    from engine.lang.loader import load_texts
    from engine.service.whatif import what_if
    service = start()
    wall.set("2026-11-12T00:00:00Z")
    service.facts.ingest(tickets() + outage(1, "2026-11-10T10:00:00Z", "2026-11-10T11:00:00Z"))
    wall.set("2026-12-01T00:00:05Z")
    service.deadlines.tick()
    assert len(packs(service.store)[0]) == 1
    since, until = utc("2026-11-01T00:00:00Z"), utc("2026-12-02T00:00:00Z")
    same = what_if(service.store, service.state.ruleset, since, until)
    assert same["changed"] is False, same
    without = load_texts({"rules.yaml": CREDIT_RULES})
    other = what_if(service.store, without, since, until)
    assert [(d["kind"], d["at"]) for d in other["removed"]] == [("review-pack", "2026-12-01T00:00:00Z")], other
    assert other["added"] == [] and other["moved"] == []
