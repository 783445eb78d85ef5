"""A rule set's version is a hash of its files' contents and their paths relative to the
rules directory: wherever the directory is, however it is named or reached."""
from __future__ import annotations

import os
import shutil

from engine.lang.loader import load_rules, load_texts
from tests.support import PORTFOLIO


def test_the_version_does_not_depend_on_where_the_rules_are(tmp_path, monkeypatch):
    ruleset = load_rules(PORTFOLIO)
    copy = tmp_path / "rules-copy2"
    shutil.copytree(PORTFOLIO, copy)
    assert load_rules(copy).version == ruleset.version
    monkeypatch.chdir(PORTFOLIO)
    assert load_rules(".").version == ruleset.version
    monkeypatch.chdir(tmp_path)
    assert load_rules(os.path.abspath(copy)).version == ruleset.version
    uploaded = {name: (PORTFOLIO / name).read_text() for name in ruleset.files}
    assert load_texts(uploaded).version == ruleset.version


def test_a_changed_file_or_path_is_another_version(tmp_path):
    copy = tmp_path / "rules"
    shutil.copytree(PORTFOLIO, copy)
    before = load_rules(copy).version
    (copy / "services" / "email.yaml").rename(copy / "services" / "mail.yaml")
    renamed = load_rules(copy).version
    assert renamed != before
    text = (copy / "services" / "mail.yaml").read_text()
    (copy / "services" / "mail.yaml").write_text(text + "\n# a comment\n")
    assert load_rules(copy).version not in (before, renamed)


def test_a_definition_is_found_as_written_in_its_version():
    ruleset = load_rules(PORTFOLIO)
    target = ruleset.targets["email-p1-response"]
    text = ruleset.source(target.origin.file, target.origin.line)
    assert text.splitlines()[0].strip() == "- id: email-p1-response"
    assert "goal: 15m" in text and "email-p1-resolution" not in text
    rule = ruleset.rules["repeated-breach-improvement"]
    assert ruleset.source(rule.origin.file, rule.origin.line).startswith("kind: Rule\nid: repeated-breach-improvement")
