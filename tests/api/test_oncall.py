"""On-call schedules on the real service (SQLite and PostgreSQL): an escalation reaches whoever
the schedule puts on call at the decision's instant (event time), across the rotation's
handover on the day the clocks go forward; the stored notification and the console's trace
name the schedule and whom it gave; nobody on call reaches the fallback, or is recorded."""
from __future__ import annotations

import shutil
from datetime import timedelta

import pytest

from api.app import create_app
from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import PORTFOLIO, ROOT, fact, utc
from tests.support.api import get, p1, post
from tests.support.console import signed_in

ROTA = ROOT / "tests" / "lang" / "oncall" / "london-rota.ics"
SLM = "  service_level_manager: slm-mail@example.org\n"


@pytest.fixture
def env(url, wall, tmp_path, request):
    rules = tmp_path / "rules"
    shutil.copytree(PORTFOLIO, rules)
    (rules / "services" / "oncall").mkdir()
    shutil.copy(ROTA, rules / "services" / "oncall" / "london-rota.ics")
    email = rules / "services" / "email.yaml"
    email.write_text(email.read_text().replace(SLM, f"  service_level_manager: {request.param}\n"))
    store = Store.open(url)
    wall.set("2026-03-30T07:00:00Z")
    service = SlmService(store, rules, now=wall)
    service.start(background=False)
    app = create_app(service)
    tokens = {role: store.add_token(role) for role in ("monitor", "auditor")}
    yield type("Env", (), {"client": app.test_client(), "app": app, "service": service, "store": store,
                           "tokens": tokens, "wall": wall})
    service.stop()
    store.close()


WITH_FALLBACK = "{oncall: oncall/london-rota.ics, timezone: Europe/London, fallback: mail-desk@example.org}"


def opened(env, subject, time, done):
    """A P1 opened at ``time``, acknowledged and resolved at ``done``: only its first levels fire
    (a clock left running for the months to the wall clock would repeat its last one). The wall
    clock is a day later: the schedule is read at each decision's instant, not the wall clock's."""
    env.wall.at = utc(done) + timedelta(days=1)
    for number, body in enumerate([p1("f1", subject=subject, time=time),
                                   fact("f2", type="incident.acknowledged", subject=subject, time=done),
                                   fact("f3", type="incident.resolved", subject=subject, time=done)]):
        assert post(env, {**body, "id": f"{subject}-{number}"}).status_code == 200


def levels(env, subject):
    """level -> (decision, its notifications to anyone but the fixed holders) of ``subject``'s
    email-p1-response escalations."""
    out = {}
    for decision in get(env, "/v1/decisions", subject=subject, target="email-p1-response",
                        kind="escalation").json["items"]:
        notes = get(env, "/v1/notifications", decision=decision["id"]).json["items"]
        out[decision["level"]] = (decision, [n for n in notes if "service_level_manager" in n["roles"]])
    return out


@pytest.mark.parametrize("env", [WITH_FALLBACK], indirect=True)
def test_each_escalation_reaches_whoever_is_on_call_at_its_instant(env):
    # opened 07:45 UTC on Monday 30 March, the first Monday of BST: 75% at 07:56:15 is
    # still Bob's week, 100% at 08:00 is 09:00 in London, Alice's handover
    opened(env, "INC-1", "2026-03-30T07:45:00Z", done="2026-03-30T08:30:00Z")
    found = levels(env, "INC-1")
    [warning] = found["75%"][1]
    [breach] = found["100%"][1]
    assert (warning["recipient"], warning["status"]) == ("bob@example.org", "pending")
    assert warning["oncall"] == [{
        "schedule": "services/oncall/london-rota.ics", "role": "service_level_manager", "at": "2026-03-30T07:56:15Z",
        "gave": ["bob@example.org"], "event": "bob@example.org", "uid": "rota-bob@example.org",
        "from": "2026-03-23T09:00:00Z", "to": "2026-03-30T08:00:00Z"}]
    assert breach["recipient"] == "alice@example.org"
    assert breach["oncall"][0]["event"] == "On call: Alice" and breach["oncall"][0]["at"] == "2026-03-30T08:00:00Z"
    page = signed_in(env, "auditor").get(f"/ui/decisions/{found['100%'][0]['id']}").get_data(as_text=True)
    assert ("on call in services/oncall/london-rota.ics at 2026-03-30T08:00:00Z (service_level_manager): "
            "On call: Alice, 2026-03-30T08:00:00Z to 2026-04-06T08:00:00Z") in page


@pytest.mark.parametrize("env", [WITH_FALLBACK], indirect=True)
def test_nobody_on_call_reaches_the_fallback_and_says_so(env):
    opened(env, "INC-2", "2027-01-12T10:00:00Z", done="2027-01-12T10:30:00Z")
    [note] = levels(env, "INC-2")["100%"][1]
    assert (note["recipient"], note["status"]) == ("mail-desk@example.org", "pending")
    assert note["oncall"] == [{"schedule": "services/oncall/london-rota.ics", "role": "service_level_manager",
                               "at": "2027-01-12T10:15:00Z", "gave": [], "fallback": ["mail-desk@example.org"]}]


@pytest.mark.parametrize("env", ["{oncall: oncall/london-rota.ics, timezone: Europe/London}"], indirect=True)
def test_nobody_on_call_and_no_fallback_is_recorded_undeliverable(env):
    opened(env, "INC-3", "2027-01-12T10:00:00Z", done="2027-01-12T10:30:00Z")
    [note] = levels(env, "INC-3")["100%"][1]
    assert (note["recipient"], note["status"], note["channel"]) == \
        ("oncall:services/oncall/london-rota.ics", "undeliverable", "default")
    assert note["last_error"] == ("nobody is on call in services/oncall/london-rota.ics at 2027-01-12T10:15:00Z and "
                                  "it names no fallback: no one is told through it as service_level_manager")
    pending = get(env, "/v1/notifications", status="pending").json["items"]
    assert pending and not [n for n in pending if n["recipient"].startswith("oncall:")]     # never tried
