"""The reference in docs/RULES.md: its field tables are the schemas', and its tutorial loads."""
from __future__ import annotations

import re

from engine.lang.loader import load_texts
from schemas import reference
from tests.support import ROOT

DOC = ROOT / "docs" / "RULES.md"


def test_every_schema_field_is_documented():
    assert reference.undocumented() == []


def test_the_committed_field_tables_are_the_schemas():
    text = DOC.read_text(encoding="utf-8")
    assert reference.BEGIN in text and reference.END in text
    assert reference.splice(text) == text, "run: python -m schemas.reference --write"


def test_the_tutorial_builds_a_service_that_loads_without_warnings():
    text = DOC.read_text(encoding="utf-8")
    tutorial = text.split("## Tutorial", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", tutorial, re.S)
    assert len(blocks) >= 4
    ruleset = load_texts({"tutorial.yaml": "---\n".join(blocks)})
    assert list(ruleset.services) == ["payroll"] and list(ruleset.targets) == ["payroll-p1-response"]
    assert [str(w) for w in ruleset.warnings if "expire" not in w.message] == []


def test_the_scenario_example_passes_against_the_tutorials_rules(tmp_path):
    """The complete scenario under "Scenarios" is run, as written, on the tutorial's rules,
    and the same scenario with a wrong expectation fails (so it checks something)."""
    from engine.scenarios import RuleSetCache, run_file

    text = DOC.read_text(encoding="utf-8")
    tutorial = text.split("## Tutorial", 1)[1].split("\n## ", 1)[0]
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "payroll.yaml").write_text(
        "---\n".join(re.findall(r"```yaml\n(.*?)```", tutorial, re.S)), encoding="utf-8")
    section = text.split("\n## Scenarios\n", 1)[1].split("\n## ", 1)[0]
    example = re.findall(r"```yaml\n(.*?)```", section, re.S)[0]
    (tmp_path / "scenarios").mkdir()
    good = tmp_path / "scenarios" / "example.yaml"
    good.write_text(example, encoding="utf-8")
    [result] = run_file(good, tmp_path / "missing", RuleSetCache())
    assert result.failures == [] and result.passed
    bad = tmp_path / "scenarios" / "wrong.yaml"
    bad.write_text(example.replace("at: 2026-11-17T09:30:00Z", "at: 2026-11-17T09:31:00Z"), encoding="utf-8")
    [result] = run_file(bad, tmp_path / "missing", RuleSetCache())
    assert not result.passed
