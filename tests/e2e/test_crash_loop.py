"""Crash loop: a client posts facts while ``slm serve`` is SIGKILLed and restarted at random
moments, at least ten times. Afterwards every fact is stored exactly once, no decision or
notification is duplicated, the decisions are those of an uninterrupted run over the same
facts, and the hash chain verifies. On SQLite and PostgreSQL, with engine snapshots every
100 facts, so restarts go through snapshot restores as well as replays.
"""
from __future__ import annotations

import random
import re
import shutil
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import PORTFOLIO
from tests.support.serving import Server, all_items, slm

pytestmark = [pytest.mark.wallclock,    # reads this machine's clock: CI runs it again years ahead
              pytest.mark.slow]

KILLS = 10
SERVICES = (("email", "P1"), ("hosting", "P2"), ("service-desk", None), ("email", "P2"), ("hosting", "P1"))


def round_the_clock(directory) -> str:
    """The tests' portfolio with every target counted round the clock: a clock counted in
    office hours could come due while the test runs, and be decided in one run and not in
    the other, depending on the time of day."""
    shutil.copytree(PORTFOLIO, directory)
    for path in directory.rglob("*.yaml"):
        path.write_text(re.sub(r"(?m)^(\s+calendar:) [\w-]+$", r"\1 24x7", path.read_text()))
    return str(directory)


def history(incidents: int) -> list[list[dict]]:
    """Incidents opened, acknowledged and resolved, all over hours ago, each incident's facts
    one request: every clock stops within its request (round the clock), hours before the
    test runs, so no deadline is left for the scheduler to fire between two requests, and
    the wall clock does not change what is decided."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
    facts = []
    for n in range(incidents):
        service, priority = SERVICES[n % len(SERVICES)]
        kind = "request" if priority is None else "incident"
        opened = start + timedelta(seconds=30 * n)
        ack = 5 if n % 3 else 25                     # every third one breaches its response target
        facts.append([{"id": f"c{n}-{suffix}", "source": "crash", "type": f"{kind}.{suffix}",
                       "time": (opened + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "subject": f"X-{n}", "service": service,
                       "data": {"priority": priority} if priority and suffix == "opened" else {}}
                      for suffix, minutes in (("opened", 0), ("acknowledged", ack), ("resolved", 60))])
    return facts


def uninterrupted(requests_made: list[list[dict]], rules: str, tmp_path) -> tuple[dict, set]:
    store = Store.open(f"sqlite:///{tmp_path / 'reference.db'}")
    service = SlmService(store, rules)
    service.start(background=False)
    for batch in requests_made:
        service.facts.ingest(batch)
    service.stop()
    decisions = {d["id"]: summary(d) for d in _everything(store.list_decisions)}
    notifications = {n["id"] for n in _everything(store.list_notifications)}
    store.close()
    return decisions, notifications


def summary(decision: dict) -> tuple:
    return decision["kind"], decision.get("target"), decision.get("subject"), decision["at"]


def _everything(list_page) -> list[dict]:
    items, cursor = [], None
    while True:
        page, cursor = list_page(cursor=cursor, limit=1000)
        items += page
        if cursor is None:
            return items


def test_kill_and_restart_at_random_moments_loses_and_duplicates_nothing(url, tmp_path):
    batches = history(400)
    facts = [fact for batch in batches for fact in batch]
    rng = random.Random(20261123)
    token = slm("token", "create", "--role", "admin", "--db", url).stdout.strip().splitlines()[-1]
    # restarts use snapshots too; no delivery: which notifications a retraction follows up
    # depends on what was already sent, and the reference run below sends nothing
    rules = round_the_clock(tmp_path / "rules")
    server = Server(url, tmp_path / "serve.log", "--snapshot-every", "100", "--no-delivery", "--rules", rules)
    headers = server.headers = {"Authorization": f"Bearer {token}"}
    acknowledged: list[str] = []            # fact ids, request by request (batches of three)
    server.start()
    kills = interrupted = 0
    try:
        while kills < KILLS or len(acknowledged) < len(facts):
            done = threading.Event()

            def post_in_order(done: threading.Event = done) -> None:
                for batch in batches[len(acknowledged) // len(batches[0]):]:
                    try:
                        r = requests.post(server.base + "/v1/facts", json=batch, headers=headers, timeout=10)
                    except requests.RequestException:
                        return                  # the server died under us
                    assert r.status_code == 200, r.text
                    acknowledged.extend(fact["id"] for fact in batch)
                done.set()

            client = threading.Thread(target=post_in_order)
            client.start()
            if kills < KILLS:
                time.sleep(rng.uniform(0.02, 0.25))
                interrupted += not done.is_set()
                server.kill()
                kills += 1
                client.join(30)
                server.start()
            else:
                client.join(120)
                assert done.is_set()
        assert acknowledged == [f["id"] for f in facts]
        assert interrupted == KILLS                         # every kill hit a client mid-stream

        stored_facts = [item["fact"]["id"] for item in all_items(server, "/v1/facts")]
        assert stored_facts == [f["id"] for f in facts]    # each once, in posting order
        stored = {d["id"]: summary(d) for d in all_items(server, "/v1/decisions")}
        decisions = list(stored)
        notifications = [n["id"] for n in all_items(server, "/v1/notifications")]
        assert len(decisions) == len(set(decisions)) and len(notifications) == len(set(notifications))
        audit = requests.get(server.base + "/v1/audit/verify", headers=headers, timeout=60).json()
        chains = audit.pop("chains")
        assert audit == {"ok": True, "checked": len(decisions), "first_broken": None}
        deliveries = chains.pop("deliveries")       # one outcome per notification made, then per attempt
        assert deliveries["ok"] and deliveries["checked"] >= len(notifications)
        cutovers = chains.pop("cutovers")           # the rule set put in force at the first start
        assert cutovers["ok"] and cutovers["checked"] >= 1
        silences = chains.pop("silences")               # none made
        assert silences["ok"] and silences["checked"] == 0
        waivers = chains.pop("waivers")                 # none made
        assert waivers["ok"] and waivers["checked"] == 0
        restatements = chains.pop("restatements")       # none made
        assert restatements["ok"] and restatements["checked"] == 0
        assert {name: (c["ok"], c["checked"]) for name, c in chains.items()} == {
            "decisions": (True, len(decisions)), "facts": (True, len(facts)),
            "notifications": (True, len(notifications))}
    finally:
        server.stop()

    expected_decisions, expected_notifications = uninterrupted(batches, rules, tmp_path)
    missing = sorted(expected_decisions[i] for i in set(expected_decisions) - set(stored))
    extra = sorted(stored[i] for i in set(stored) - set(expected_decisions))
    assert (missing, extra) == ([], [])
    assert set(notifications) == expected_notifications
