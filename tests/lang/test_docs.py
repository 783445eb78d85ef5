"""``slm docs SERVICE``: the shipped email agreements read as a document a customer could
sign, HTML escapes what the rules say, and --db renders the rules in force."""
from __future__ import annotations

import shutil

from click.testing import CliRunner

from cli.main import main
from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import RULES


def docs(*args: str):
    return CliRunner().invoke(main, ["docs", *args], catch_exceptions=False)


def test_the_email_sla_reads_as_an_agreement():
    result = docs("email", "--rules", str(RULES), "--agreement", "sla-email")
    assert result.exit_code == 0, result.output
    text = result.output
    for sentence in [
        "# Corporate email: service level agreements",
        "## Service level agreement: sla-email",
        "For University staff and students. Agreed. Valid from 1 January 2026, with no end date.",
        "**P1 incidents are acknowledged within 15 minutes, 24x7.**",
        "**P1 incidents are resolved within 4 hours, 24x7.**",
        "**P2 incidents are acknowledged within 1 hour, counted in business hours Mon–Fri 08:00–18:00 "
        "Europe/London, excluding public holidays of GB-ENG, 24 December 2026 and 31 December 2026.**",
        "- Time while the incident is pending does not count, until it is resumed.",
        "- When the incident is reopened, a new period of 4 hours starts.",
        "- A warning is raised at 50% (7 minutes 30 seconds) and 75% (11 minutes 15 seconds) of the time allowed.",
        "**Available 99.9% of the time each calendar month, 24x7.**",
        "- That allows 43 minutes 12 seconds of downtime in a 30-day month.",
        "**A review is completed at least every 365 days, 24x7.**",
        "| 2 hours of service hours after the breach, then every 4 hours while the clock runs | major-breach | "
        "SLM process owner accountable; service owner responsible; configuration item owner consulted; "
        "LT sponsor and business owner informed |",
        "| breach-warning | R | A | I |",
        "| service owner | mail-owner@example.org |",
    ]:
        assert sentence in text, sentence
    assert "ola-email-infrastructure" not in text.split("## Service hours")[0]     # only the SLA asked for


def test_every_agreement_in_force_is_rendered_by_default_slas_first():
    text = docs("hosting", "--rules", str(RULES)).output
    headings = [line for line in text.splitlines() if line.startswith("## ") and ":" in line]
    assert headings == ["## Service level agreement: sla-hosting",
                        "## Operational level agreement: ola-hosting-web-ops",
                        "## Underpinning contract: uc-hosting-cdn",
                        "## Service level requirement (proposed): slr-hosting-2027"]
    assert "**latency_p95 is at most 300 for 99.5% of the time each calendar month, 24x7.**" in text


def test_an_unknown_service_or_agreement_names_the_known_ones():
    result = CliRunner().invoke(main, ["docs", "mail", "--rules", str(RULES)])
    assert result.exit_code == 2
    assert "unknown service 'mail' (services: email, hosting, service-desk)" in result.output
    result = CliRunner().invoke(main, ["docs", "email", "--rules", str(RULES), "--agreement", "sla-mail"])
    assert result.exit_code == 2
    assert "no agreement 'sla-mail' in force for service 'email' (agreements: ola-email-infrastructure, " \
           "sla-email)" in result.output


def test_html_escapes_what_the_rules_say(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    email = rules / "services" / "email.yaml"
    email.write_text(email.read_text().replace("customer: University staff and students",
                                               'customer: "<script>alert(1)</script> & Sons"', 1))
    html = docs("email", "--rules", str(rules), "--format", "html").output
    assert "For &lt;script&gt;alert(1)&lt;/script&gt; &amp; Sons." in html
    assert "<script>" not in html
    assert "<p class=\"promise\">P1 incidents are acknowledged within 15 minutes, 24x7.</p>" in html


def test_db_renders_the_rules_in_force(url, wall, tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    store = Store.open(url)
    service = SlmService(store, rules, now=wall)
    service.start(background=False)
    service.stop()
    store.close()
    email = rules / "services" / "email.yaml"
    email.write_text(email.read_text().replace("goal: 15m", "goal: 20m", 1))     # not put in force
    in_force = docs("email", "--db", url).output
    assert "**P1 incidents are acknowledged within 15 minutes, 24x7.**" in in_force
    assert "**P1 incidents are acknowledged within 20 minutes, 24x7.**" in docs("email", "--rules", str(rules)).output


def test_the_document_names_every_maintenance_window_the_engine_leaves_out():
    """A customer signs what is enforced: each declared window a target excludes (weekly
    and one-off, as the engine's calendar takes them out) and the windows posted as facts."""
    from engine.lang.loader import load_rules
    from engine.lang.maintenance import ExcludingCalendar
    from tests.support import ROOT

    rules = ROOT / "fixtures" / "rulesets" / "maintenance"
    text = docs("email", "--rules", str(rules)).output
    excluding, raw = text.split("### Email up 99% of each day, every outage counted")
    assert "every Sun 02:00–04:00 Europe/London (email-patching)" in excluding
    assert "from 17 November 2026 20:00 UTC to 17 November 2026 22:00 UTC (email-patching)" in excluding
    assert "maintenance.started" in excluding and "maintenance.ended" in excluding
    assert "maintenance" not in raw.split("## Service hours")[0]      # the target that counts every outage
    ruleset = load_rules(rules)
    calendar = ruleset.targets["email-availability"].calendar
    assert isinstance(calendar, ExcludingCalendar)
    assert all(f"({ref})" in excluding for ref, _, _ in calendar.windows.weekly)
    assert all(f"{a:%H:%M} UTC" in excluding and f"{b:%H:%M} UTC" in excluding for a, b, _ in calendar.windows.once)


def test_reply_and_update_targets_read_as_their_promise():
    result = docs("service-desk", "--rules", str(RULES), "--agreement", "sla-service-desk")
    assert result.exit_code == 0, result.output
    text = result.output
    assert ("**Each time a request is opened or commented by the requester, it is commented by the agent or "
            "resolved within 2 hours, counted in business hours") in text
    assert "- A message while an earlier one waits for its answer counts from the earlier one" in text
    assert "**While a request is open, it is commented by the agent at least every 8 hours, counted" in text
    assert "- Each update starts the period again; updates stop when the request is resolved." in text
