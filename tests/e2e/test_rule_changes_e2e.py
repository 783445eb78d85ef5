"""Rule changes through a real ``slm serve`` (SQLite and PostgreSQL): a reload never alters
or back-dates a decision, running clocks keep their version unless their target says
otherwise, and a SIGKILL right after a reload restarts into the same state."""
from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.support import PORTFOLIO
from tests.support.serving import Server, all_items, slm

pytestmark = pytest.mark.wallclock     # reads this machine's clock: CI runs it again years ahead


@pytest.fixture
def rules(tmp_path):
    copy = tmp_path / "rules"
    shutil.copytree(PORTFOLIO, copy)
    return copy


@pytest.fixture
def server(url, tmp_path, rules):
    token = slm("token", "create", "--role", "admin", "--db", url)
    assert token.returncode == 0, token.stderr
    srv = Server(url, tmp_path / "serve.log", "--rules", str(rules))
    srv.headers = {"Authorization": f"Bearer {token.stdout.strip().splitlines()[-1]}"}
    srv.start()
    yield srv
    srv.stop()


def edit(rules, old: str, new: str) -> None:
    email = rules / "services" / "email.yaml"
    text = email.read_text()
    assert old in text
    email.write_text(text.replace(old, new, 1))


def opened(srv, subject: str, minutes_ago: int) -> None:
    at = (datetime.now(UTC) - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    fact = {"id": f"open-{subject}", "source": "itsm", "type": "incident.opened", "time": at,
            "subject": subject, "service": "email", "data": {"priority": "P1"}}
    assert requests.post(srv.base + "/v1/facts", json=fact, headers=srv.headers, timeout=30).status_code == 200


def reload(srv) -> dict:
    response = requests.post(srv.base + "/v1/rules/reload", headers=srv.headers, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def clocks(srv, subject: str) -> dict:
    items = requests.get(srv.base + "/v1/clocks", params={"subject": subject}, headers=srv.headers,
                         timeout=30).json()["items"]
    return {c["target"]: c["budget"] for c in items}


@pytest.mark.slow
def test_reloads_never_rewrite_the_past_and_survive_a_kill(server, rules):
    opened(server, "INC-1", 20)                                  # breached its 15m five minutes ago
    first = all_items(server, "/v1/decisions", subject="INC-1")
    assert ("breach", "email-p1-response") in {(d["kind"], d["target"]) for d in first}
    version_1 = requests.get(server.base + "/v1/rules", headers=server.headers, timeout=30).json()["version"]

    edit(rules, "    goal: 15m\n    warn_at: [50%, 75%]", "    goal: 2h\n    warn_at: [25%, 50%, 75%]")
    version_2 = reload(server)["version"]
    edit(rules, "    goal: 2h\n", "    goal: 36m\n")
    version_3 = reload(server)["version"]
    assert len({version_1, version_2, version_3}) == 3
    assert all_items(server, "/v1/decisions", subject="INC-1") == first    # nothing added, moved or retracted
    assert clocks(server, "INC-1")["email-p1-response"] == "15m"            # the version it started with

    opened(server, "INC-2", 1)
    assert clocks(server, "INC-2")["email-p1-response"] == "36m"            # the version in force
    versions = requests.get(server.base + "/v1/rules/versions", headers=server.headers, timeout=30).json()
    assert [v["version"] for v in versions["items"]] == [version_1, version_2, version_3]
    assert versions["items"][-1]["in_force"]
    diff = requests.get(server.base + f"/v1/rules/versions/{version_3}", params={"against": version_1},
                        headers=server.headers, timeout=30).json()["diff"]
    assert "-    goal: 15m" in diff and "+    goal: 36m" in diff

    before = {"clocks": {s: clocks(server, s) for s in ("INC-1", "INC-2")},
              "decisions": {d["id"] for d in all_items(server, "/v1/decisions")}}
    server.kill()                                               # right after the reloads
    server.start()
    assert {s: clocks(server, s) for s in ("INC-1", "INC-2")} == before["clocks"]
    after = [d["id"] for d in all_items(server, "/v1/decisions")]
    assert len(after) == len(set(after)) and before["decisions"] <= set(after)
    trace = requests.get(server.base + f"/v1/decisions/{first[0]['id']}/trace", headers=server.headers,
                         timeout=30).json()
    assert trace["rule"]["ruleset"] == version_1 and "goal: 15m" in (trace["rule"]["text"] or "")
    verify = requests.get(server.base + "/v1/audit/verify", headers=server.headers, timeout=30).json()
    assert verify["ok"]


def test_a_repriced_clock_is_decided_at_the_reload_never_before(server, rules):
    opened(server, "INC-3", 20)
    # the resolution target (4h) gains a 5% level (12 minutes), passed 8 minutes ago
    edit(rules, "    goal: 4h\n    warn_at: [75%]", "    goal: 4h\n    warn_at: [5%, 75%]\n    on_change: reprice")
    reloaded_at = datetime.now(UTC).replace(microsecond=0)
    reload(server)
    warning = [d for d in all_items(server, "/v1/decisions", subject="INC-3", kind="warning")
               if d["target"] == "email-p1-resolution" and d.get("level") == "5%"]
    assert len(warning) == 1
    at = datetime.fromisoformat(warning[0]["at"].replace("Z", "+00:00"))
    assert at >= reloaded_at - timedelta(seconds=1)              # at the reload, not 12 minutes after opening
    assert any(ref.startswith("rules:") for ref in warning[0]["because"])
