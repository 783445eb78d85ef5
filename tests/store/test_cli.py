"""The operator commands: ``slm token`` and ``slm audit verify`` on a real database."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from cli import main
from engine.store.store import Store

pytestmark = pytest.mark.wallclock     # reads this machine's clock: CI runs it again years ahead


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def decision(n: int) -> dict:
    return {"id": f"dec_{n}", "kind": "breach", "target": "t", "subject": f"S-{n}", "service": "email",
            "at": f"2026-11-02T09:{n:02d}:00Z", "rule": {"id": "t", "file": "f.yaml", "line": 1, "ruleset": "sha256:x"}}


def test_token_create_prints_a_working_token_on_its_last_line_and_revoke_ends_it(url):
    created = run("token", "create", "--role", "auditor", "--name", "ci", "--db", url)
    assert created.exit_code == 0
    token = created.output.strip().splitlines()[-1]
    assert token.startswith("slm_")
    with Store.open(url) as store:
        assert store.token_role(token) == "auditor"
    assert run("token", "revoke", token, "--db", url).exit_code == 0
    with Store.open(url) as store:
        assert store.token_role(token) is None
    assert run("token", "create", "--role", "root", "--db", url).exit_code == 2


def test_audit_verify_names_the_first_edited_record(url):
    with Store.open(url) as store:
        store.add_decisions([decision(n) for n in range(1, 6)])
    ok = run("audit", "verify", "--db", url)
    assert ok.exit_code == 0 and "OK: 5 decisions" in ok.output
    with Store.open(url) as store:
        D = store.m.Decision
        D.update(body=D.body.concat(" ")).where(D.seq == 3).execute()
    broken = run("audit", "verify", "--db", url)
    assert broken.exit_code == 1
    assert "BROKEN at decision seq 3 (dec_3)" in broken.output and "2 records before it verify" in broken.output


def test_a_bad_database_url_is_a_clean_error():
    result = run("audit", "verify", "--db", "mysql://nowhere/db")
    assert result.exit_code == 2 and "unsupported database URL" in result.output


def test_a_postgresql_url_without_the_driver_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg2", None)      # as if the extra were not installed
    result = run("audit", "verify", "--db", "postgresql://postgres@127.0.0.1:5432/test")
    assert result.exit_code == 2
    assert "needs the PostgreSQL driver, which is not installed: pip install 'slm[postgresql]'" in result.output


def test_report_reads_the_months_compliance_and_writes_nothing(url, wall):
    from engine.service.live import SlmService
    from tests.support import PORTFOLIO, fact, fact_count

    store = Store.open(url)
    service = SlmService(store, PORTFOLIO, now=wall, snapshot_every=0)
    service.start(background=False)
    wall.set("2026-11-05T04:00:00Z")
    service.facts.ingest([fact("a", subject="INC-A", time="2026-11-05T03:00:00Z", priority="P1"),
                          fact("b", subject="INC-B", time="2026-11-05T03:00:00Z", priority="P1"),
                          fact("ack", type="incident.acknowledged", subject="INC-B", time="2026-11-05T03:05:00Z")])
    expected = service.engine_reads.compliance("email", "2026-11")
    service.stop()
    counts = (fact_count(store), store.decision_count(), len(store.ticks()))
    store.close()

    as_json = run("report", "--service", "email", "--period", "2026-11", "--db", url, "--rules", str(PORTFOLIO),
                  "--json")
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.output)
    rows = {r["target"]: r for r in report["targets"]}
    assert (rows["email-p1-response"]["met"], rows["email-p1-response"]["breached"]) == (1, 1)
    assert rows["email-p1-response"]["compliance"] == 50.0
    assert report == expected                        # what the running service answered

    text = run("report", "--service", "email", "--period", "2026-11", "--db", url, "--rules", str(PORTFOLIO))
    assert text.exit_code == 0
    line = next(row for row in text.output.splitlines() if row.startswith("email-p1-response "))
    assert line.split()[1:] == ["sla-email", "15m", "2", "1", "1", "50", "%", "—"]
    with Store.open(url) as store:
        assert (fact_count(store), store.decision_count(), len(store.ticks())) == counts

    unknown = run("report", "--service", "mail", "--period", "2026-11", "--db", url, "--rules", str(PORTFOLIO))
    assert unknown.exit_code == 2 and "unknown service 'mail'" in unknown.output
    bad_month = run("report", "--service", "email", "--period", "2026-13", "--db", url)
    assert bad_month.exit_code == 2 and "is not a month" in bad_month.output


def test_coverage_names_what_never_fired_by_id_with_file_and_line():
    result = run("test", "--coverage", "fixtures/scenarios/availability-met-at-window-end.yaml")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.strip().startswith("target email-p2-response (applies_to) at ")
               and "services/email.yaml:" in line for line in lines), result.output
    assert any(line.strip().startswith("rule repeated-breach-improvement at ") for line in lines)
    assert not any(line.strip().startswith(("applies:", "life:", "rule:")) for line in lines)


def test_sqlite_needs_no_postgresql_driver(tmp_path):
    # a fresh interpreter in which the optional driver cannot be imported at all
    script = ("import sys; sys.modules['psycopg2'] = None; from cli import main; "
              f"main(['token', 'create', '--role', 'monitor', '--db', 'sqlite:///{tmp_path}/slm.db'])")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("slm_")


def test_settings_come_from_the_environment_when_no_option_gives_them(tmp_path):
    url = f"sqlite:///{tmp_path}/from-env.db"
    created = CliRunner(env={"SLM_DATABASE_URL": url}).invoke(main, ["token", "create", "--role", "owner"])
    assert created.exit_code == 0, created.output
    with Store.open(url) as store:
        assert store.token_role(created.output.strip().splitlines()[-1]) == "owner"
    # an option given on the command line wins over the environment
    elsewhere = f"sqlite:///{tmp_path}/from-option.db"
    again = CliRunner(env={"SLM_DATABASE_URL": url}).invoke(main, ["token", "create", "--role", "owner",
                                                                    "--db", elsewhere])
    with Store.open(elsewhere) as store:
        assert store.token_role(again.output.strip().splitlines()[-1]) == "owner"


def test_serve_help_names_each_settings_environment_variable():
    shown = " ".join(run("serve", "--help").output.split())
    for name in ("SLM_RULES", "SLM_DATABASE_URL", "SLM_HOST", "SLM_PORT", "SLM_MAX_LATENESS", "SLM_MAX_BODY",
                 "SLM_SMTP_URL", "SLM_MAIL_FROM", "SLM_WEBHOOK_SECRET", "SLM_PUBLIC_URL", "SLM_AUDIT_KEY_FILE",
                 "SLM_SECRET_KEY", "SLM_COOKIE_SECURE", "SLM_LEASE_TTL"):
        assert f"env var: {name}" in shown, name


def test_a_lease_of_no_time_is_refused(tmp_path):
    result = CliRunner(env={"SLM_LEASE_TTL": "0s"}).invoke(
        main, ["serve", "--db", f"sqlite:///{tmp_path}/slm.db", "--rules", str(tmp_path)])
    assert result.exit_code == 2 and "--lease-ttl" in result.output and "at least 1s" in result.output


def test_a_rules_directory_from_the_environment_is_checked(tmp_path):
    result = CliRunner(env={"SLM_RULES": str(tmp_path / "missing")}).invoke(main, ["check"])
    assert result.exit_code == 1 and f"{tmp_path / 'missing'}:1:1: no such rules directory" in result.output
