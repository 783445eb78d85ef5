"""The scenario runner's own rules, checked on small scenarios through the runner and
through `slm test`."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from conftest import RULES
from engine.scenarios import RuleSetCache, run_file

# A P1 on email opened at 09:00 and never acknowledged, run to 12:00: email-p1-response
# (15m) warns at 50% and 75% and breaches at 09:15; ola-mx-p1-response (10m) breaches too.
HEAD = f"""\
name: small
rules: {RULES}
facts:
  - {{id: f1, type: incident.opened, time: 2026-11-02T09:00:00Z, subject: INC-1, service: email,
     data: {{priority: P1}}}}
until: 2026-11-02T12:00:00Z
"""
BODY_LINE = HEAD.count("\n") + 1      # the first line after HEAD


def scenario(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(HEAD + body, encoding="utf-8")
    return path


def failures(path: Path) -> list[str]:
    """The runner's failures for a one-scenario file, checked to agree with `slm test`."""
    [result] = run_file(path, RULES, RuleSetCache())
    cli = CliRunner().invoke(main, ["test", str(path)])
    assert cli.exit_code == (0 if result.passed else 1), cli.output
    assert cli.output.splitlines()[-1] == ("1 passed, 0 failed" if result.passed else "0 passed, 1 failed")
    for failure in result.failures:
        assert failure.splitlines()[0] in cli.output
    return result.failures


# 1. expect and absent are each optional, and each take decisions and/or notifications

@pytest.mark.parametrize("body", [
    "",
    "expect:\n  decisions: [{kind: breach, target: email-p1-response, subject: INC-1}]\n",
    "expect:\n  notifications: [{activity: breach-handling, recipient: slm-mail@example.org, raci: R}]\n",
    "absent:\n  decisions: [{kind: met, subject: INC-1}]\n",
    "absent:\n  notifications: [{recipient: nobody@example.org}]\n",
    "expect: {}\nabsent: {}\n",
], ids=["neither", "expect-decisions", "expect-notifications", "absent-decisions", "absent-notifications",
        "both-empty"])
def test_expect_and_absent_are_each_optional(tmp_path, body):
    assert failures(scenario(tmp_path, body)) == []


def test_a_scenario_with_only_absent_still_checks_it(tmp_path):
    path = scenario(tmp_path, "absent:\n  decisions:\n    - {kind: breach, target: email-p1-response}\n")
    [failure] = failures(path)
    assert failure.startswith("unexpected decision: {kind: breach, target: email-p1-response}")
