"""What-if replay: `slm replay` and `POST /v1/rules/preview` re-evaluate the stored history
under other rules, read only, and list exactly what would differ."""
from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from api.app import create_app
from cli import main
from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import PORTFOLIO, fact

P1 = {"priority": "P1"}


def started(url, wall, tmp_path) -> tuple[Store, object, SlmService]:
    """A service on a copy of the portfolio, started at 08:00."""
    rules = tmp_path / "rules"
    shutil.copytree(PORTFOLIO, rules)
    store = Store.open(url)
    service = SlmService(store, rules, now=wall, snapshot_every=0)
    wall.set("2026-11-02T08:00:00Z")
    service.start(background=False)
    return store, rules, service


@pytest.fixture
def history(url, wall, tmp_path):
    """A store with a few P1 incidents: some acknowledged in time, one breached, one late."""
    store, rules, service = started(url, wall, tmp_path)
    for n, (opened, acked) in enumerate((("09:00", "09:05"), ("10:00", "10:20"), ("11:00", "11:12"))):
        wall.set(f"2026-11-02T{acked}:30Z")
        service.facts.ingest([fact(f"o{n}", time=f"2026-11-02T{opened}:00Z", subject=f"INC-{n}", **P1),
                              fact(f"a{n}", type="incident.acknowledged", time=f"2026-11-02T{acked}:00Z",
                                   subject=f"INC-{n}")])
    wall.set("2026-11-02T23:00:00Z")
    service.deadlines.tick()
    service.stop()
    yield store, rules, service
    store.close()


def replay(store_url: str, rules, *extra) -> tuple[int, dict]:
    result = CliRunner().invoke(main, ["replay", "--rules", str(rules), "--db", store_url,
                                       "--since", "2026-11-01T00:00:00Z", "--until", "2026-11-03T00:00:00Z",
                                       "--json", *extra])
    return result.exit_code, (json.loads(result.output) if result.output.strip().startswith("{") else result.output)


def test_unchanged_rules_replay_to_exactly_what_was_recorded(history, url):
    store, rules, _ = history
    code, result = replay(url, rules)
    assert code == 0, result
    assert result["facts"] == 6 and not result["changed"]
    assert result["added"] == result["removed"] == result["moved"] == []


def test_a_changed_goal_lists_exactly_the_decisions_that_move(history, url, tmp_path):
    store, rules, service = history
    changed = tmp_path / "changed"
    shutil.copytree(rules, changed)
    email = changed / "services" / "email.yaml"
    email.write_text(email.read_text().replace("    goal: 15m\n", "    goal: 25m\n", 1))
    code, result = replay(url, changed)
    assert code == 1 and result["changed"]
    moved = {(d["kind"], d["level"], d["subject"], d["from"], d["at"]) for d in result["moved"]
             if d["target"] == "email-p1-response"}
    assert ("warning", "50%", "INC-1", "2026-11-02T10:07:30Z", "2026-11-02T10:12:30Z") in moved
    removed = {(d["kind"], d["subject"]) for d in result["removed"] if d["target"] == "email-p1-response"}
    added = {(d["kind"], d["subject"]) for d in result["added"] if d["target"] == "email-p1-response"}
    assert ("breach", "INC-1") in removed and ("met", "INC-1") in added        # acknowledged at 20m < 25m
    row = next(r for r in result["compliance"] if r["target"] == "email-p1-response")
    assert row["before"] == {"met": 2, "breached": 1, "compliance": 66.67}
    assert row["after"] == {"met": 3, "breached": 0, "compliance": 100.0}
    # the preview over HTTP answers the same
    app = create_app(service)
    files = {str(p.relative_to(changed)): p.read_text() for p in changed.rglob("*.yaml")}
    owner = store.add_token("owner")
    response = app.test_client().post("/v1/rules/preview", json={"files": files},
                                      query_string={"since": "2026-11-01T00:00:00Z", "until": "2026-11-03T00:00:00Z"},
                                      headers={"Authorization": f"Bearer {owner}"})
    assert response.status_code == 200, response.json
    assert {k: response.json[k] for k in ("added", "removed", "moved", "compliance")} == \
        {k: result[k] for k in ("added", "removed", "moved", "compliance")}


def test_bad_rules_exit_2_and_change_nothing(history, url, tmp_path):
    store, rules, _ = history
    broken = tmp_path / "broken"
    shutil.copytree(rules, broken)
    email = broken / "services" / "email.yaml"
    email.write_text(email.read_text().replace("goal: 15m", "goal: 15 minutes", 1))
    before = store.decision_count()
    result = CliRunner().invoke(main, ["replay", "--rules", str(broken), "--db", url])
    assert result.exit_code == 2 and "is not a duration" in result.output
    assert store.decision_count() == before


@pytest.mark.slow
def test_a_report_counts_each_cycle_under_the_version_that_judged_it(url, wall, tmp_path):
    store, rules, service = started(url, wall, tmp_path)
    old = service.state.ruleset.version
    wall.set("2026-11-02T09:30:00Z")
    service.facts.ingest([fact("o1", time="2026-11-02T09:00:00Z", subject="INC-1", **P1),
                          fact("a1", type="incident.acknowledged", time="2026-11-02T09:20:00Z", subject="INC-1")])
    email = rules / "services" / "email.yaml"
    email.write_text(email.read_text().replace("    goal: 15m\n", "    goal: 30m\n", 1))
    service.rules.reload()
    wall.set("2026-11-02T10:30:00Z")
    service.facts.ingest([fact("o2", time="2026-11-02T10:00:00Z", subject="INC-2", **P1),
                          fact("a2", type="incident.acknowledged", time="2026-11-02T10:20:00Z", subject="INC-2")])
    report = service.engine_reads.compliance("email", "2026-11")
    row = next(r for r in report["targets"] if r["target"] == "email-p1-response")
    assert (row["met"], row["breached"], row["goal"]) == (1, 1, "30m")
    new = service.state.ruleset.version
    assert row["by_version"] == sorted([{"version": old, "goal": "15m", "met": 0, "breached": 1},
                                        {"version": new, "goal": "30m", "met": 1, "breached": 0}],
                                       key=lambda v: v["version"])
    assert [v["version"] for v in report["versions"]] == [old, new]
    service.stop()
    store.close()
