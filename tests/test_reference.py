"""The reference in docs/RULES.md: its field tables are the schemas', and its tutorial loads."""
from __future__ import annotations

import re
from pathlib import Path

from engine.lang.loader import load_texts
from schemas import reference

DOC = Path(__file__).resolve().parent.parent / "docs" / "RULES.md"


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
