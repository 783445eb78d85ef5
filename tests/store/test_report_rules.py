"""``slm report --db`` reports under the rules in force in that database, as ``slm docs
--db`` does, wherever it is run from (issue 20, item 18)."""
from __future__ import annotations

import json
import shutil

from click.testing import CliRunner

from cli.main import main
from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import PORTFOLIO, fact


def test_report_uses_the_rules_in_force_in_the_database_from_any_directory(url, wall, tmp_path, monkeypatch):
    rules = tmp_path / "served-rules"
    shutil.copytree(PORTFOLIO, rules)
    (rules / "services" / "email.yaml").write_text((rules / "services" / "email.yaml").read_text()
                                                    + "\n# changed: another version than the portfolio's\n")
    store = Store.open(url)
    service = SlmService(store, rules, now=wall, snapshot_every=0)
    service.start(background=False)
    wall.set("2026-11-05T04:00:00Z")
    service.facts.ingest([fact("a", subject="INC-A", time="2026-11-05T03:00:00Z", priority="P1")])
    expected = service.engine_reads.compliance("email", "2026-11")
    in_force = service.state.ruleset.version
    service.stop()
    store.close()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "rules").symlink_to(PORTFOLIO)          # ./rules here is another version
    monkeypatch.chdir(elsewhere)
    result = CliRunner().invoke(main, ["report", "--service", "email", "--period", "2026-11", "--db", url, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ruleset"] == in_force and report == expected
