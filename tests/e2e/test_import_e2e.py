"""``slm import facts`` against a real ``slm serve``: JSON lines and CSV put in event-time
order, a ticket's whole history in one run, idempotent, resumable, and a refused fact named
by file:line."""
from __future__ import annotations

import json

import pytest
import requests

from tests.support import RULES
from tests.support.serving import Server, all_items, slm

pytestmark = pytest.mark.wallclock     # a real server reads this machine's clock


@pytest.fixture
def server(url, tmp_path):
    token = slm("token", "create", "--role", "admin", "--db", url)
    assert token.returncode == 0, token.stderr
    srv = Server(url, tmp_path / "serve.log")
    srv.token = token.stdout.strip().splitlines()[-1]
    srv.headers = {"Authorization": f"Bearer {srv.token}"}
    srv.start()
    yield srv
    srv.stop()


def run_import(server, *args):
    return slm("import", "facts", "--url", server.base, "--token", server.token, *args)


def event(id, type, time, subject="INC-Q3-1", **data):
    return {"id": id, "source": "itsm/history", "type": type, "time": time, "subject": subject,
            "service": "email", "data": data}


def stored(server):
    return [(i["fact"]["id"], i["fact"]["time"]) for i in all_items(server, "/v1/facts")]


def write_lines(path, facts):
    path.write_text("".join(json.dumps(f) + "\n" for f in facts))
    return path


def test_a_quarter_of_history_is_loaded_in_event_time_order_and_once(server, tmp_path):
    # written newest first, and a ticket opened and resolved 8 days apart (the bound is 7d)
    history = write_lines(tmp_path / "q3.jsonl", [
        event("e4", "incident.resolved", "2026-09-09T10:00:00Z"),
        event("e1", "incident.opened", "2026-09-01T09:00:00Z", priority="P1"),
        event("e2", "incident.opened", "2026-09-02T09:00:00Z", subject="INC-Q3-2", priority="P2"),
        event("e3", "incident.acknowledged", "2026-09-01T09:10:00Z"),
    ])
    result = run_import(server, str(history), "--batch", "3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "4 facts in event-time order: 4 stored, 0 stored before"
    assert "importing facts" in result.stderr                    # the progress bar
    assert stored(server) == [("e1", "2026-09-01T09:00:00Z"), ("e3", "2026-09-01T09:10:00Z"),
                              ("e2", "2026-09-02T09:00:00Z"), ("e4", "2026-09-09T10:00:00Z")]
    again = run_import(server, str(history))
    assert again.returncode == 0 and again.stdout.strip() == "4 facts in event-time order: 0 stored, 4 stored before"
    assert len(stored(server)) == 4


def test_csv_through_a_column_map(server, tmp_path):
    csv = tmp_path / "legacy.csv"
    csv.write_text("EventId,Ticket,Event,At,Prio\n"
                   "7,OLD-1,incident.resolved,2026-09-03T12:00:00+02:00,\n"
                   "6,OLD-1,incident.opened,2026-09-03T09:00:00+02:00,P2\n")
    result = run_import(server, str(csv), "--column", "id=EventId", "--column", "subject=Ticket",
                        "--column", "type=Event", "--column", "time=At", "--column", "data.priority=Prio",
                        "--value", "source=legacy/import", "--value", "service=email")
    assert result.returncode == 0, result.stderr
    facts = [i["fact"] for i in all_items(server, "/v1/facts")]
    assert [(f["id"], f["type"], f["source"], f["data"]) for f in facts] == [
        ("6", "incident.opened", "legacy/import", {"priority": "P2"}),
        ("7", "incident.resolved", "legacy/import", {})]


def test_a_refused_fact_is_named_by_file_line_and_the_fixed_import_goes_on(server, tmp_path):
    facts = [event(f"r{n}", "incident.opened", f"2026-09-0{n}T09:00:00Z", subject=f"INC-R{n}", priority="P3")
             for n in range(1, 7)]
    facts[4]["service"] = "emial"                                 # the 5th in time, on line 5
    path = write_lines(tmp_path / "history.jsonl", facts)
    state = tmp_path / "import.state"
    refused = run_import(server, str(path), "--batch", "2", "--state", str(state))
    assert refused.returncode == 1
    assert f"{path}:5: service: unknown service 'emial'" in refused.stderr
    assert [i for i, _ in stored(server)] == ["r1", "r2", "r3", "r4"]     # the batches before it
    facts[4]["service"] = "email"
    write_lines(path, facts)
    fixed = run_import(server, str(path), "--batch", "2", "--state", str(state))
    assert fixed.returncode == 0, fixed.stderr
    assert "going on after 4 facts posted before" in fixed.stderr
    assert fixed.stdout.strip() == ("6 facts in event-time order: 2 stored, 0 stored before, "
                                    "4 skipped as posted by an earlier run")
    assert len(stored(server)) == 6


def test_a_tool_s_exported_webhooks_come_in_through_its_mapping(server, tmp_path):
    def issue(action, updated, **extra):
        return {"action": action, "repository": {"name": "email", "full_name": "acme/email"},
                "issue": {"id": 77, "number": 5, "labels": [{"name": "P1"}], "created_at": "2026-09-01T09:00:00Z",
                          "updated_at": updated, "closed_at": "2026-09-03T10:00:00Z" if action == "closed" else None},
                **extra}
    path = write_lines(tmp_path / "github.jsonl", [
        issue("closed", "2026-09-03T10:00:00Z"),
        issue("labeled", "2026-09-01T09:05:00Z", label={"name": "bug"}),
        issue("opened", "2026-09-01T09:00:00Z")])
    result = run_import(server, str(path), "--mapping", "github", "--rules", str(RULES))
    assert result.returncode == 0, result.stderr
    assert f"{path}:2: no fact: facts[0]: when" in result.stderr
    assert result.stdout.strip() == ("2 facts in event-time order: 2 stored, 0 stored before; "
                                     "1 payloads made no fact")
    facts = [i["fact"] for i in all_items(server, "/v1/facts")]
    assert [(f["type"], f["subject"], f["source"], f["service"]) for f in facts] == [
        ("incident.opened", "acme/email#5", "github", "email"),
        ("incident.resolved", "acme/email#5", "github", "email")]


def test_a_file_that_is_no_facts_posts_nothing(server, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(event("x1", "incident.opened", "2026-09-01T09:00:00Z")) + "\n"
                    + json.dumps(event("x2", "incident.opened", "yesterday")) + "\n")
    result = run_import(server, str(path))
    assert result.returncode == 1 and f"{path}:2: time:" in result.stderr and "nothing was posted" in result.stderr
    assert requests.get(server.base + "/v1/facts", headers=server.headers, timeout=10).json()["items"] == []


def test_a_column_map_is_checked_before_anything_is_posted(tmp_path):
    from click.testing import CliRunner

    from cli import main

    csv = tmp_path / "t.csv"
    csv.write_text("Key,At\nA-1,2026-09-01T09:00:00Z\n")
    unknown_field = CliRunner().invoke(main, ["import", "facts", "--token", "t", "--column", "prio=Key", str(csv)])
    assert unknown_field.exit_code == 2 and "FIELD one of id, source, type, time, subject, service or data.NAME" \
        in unknown_field.output
    missing = CliRunner().invoke(main, ["import", "facts", "--token", "t", "--url", "http://127.0.0.1:9",
                                        "--column", "time=Created", str(csv)])
    assert missing.exit_code == 1 and f"{csv}:1: no column 'Created' (columns: Key, At)" in missing.output
