"""Rules are parsed safely (issue 11, part 3): YAML aliases refused, deep nesting an error
at its line, templates compiled when the rules load (file:line), rendering bounded."""
from __future__ import annotations

import time

import pytest

from conftest import ROOT
from engine.lang.errors import RuleSetError
from engine.lang.loader import load_texts
from engine.lang.templates import MAX_OUTPUT, render

CHAIN = (ROOT / "fixtures" / "rulesets" / "decision-chain" / "rules.yaml").read_text()


def problems_of(files: dict[str, str]) -> list[str]:
    with pytest.raises(RuleSetError) as caught:
        load_texts(files)
    return [str(p) for p in caught.value.problems]


BOMB = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x]"] +
                 [f"{chr(98 + n)}: &{chr(98 + n)} [{', '.join(['*' + chr(97 + n)] * 9)}]" for n in range(8)])


@pytest.mark.parametrize("text, where", [
    (BOMB, "bomb.yaml:2:"),
    ("kind: Service\nid: a\nroles: &r [*r]\n", "bomb.yaml:3:"),
])
def test_yaml_aliases_are_refused_where_they_are(text, where):
    began = time.monotonic()
    found = problems_of({"bomb.yaml": text})
    assert time.monotonic() - began < 2
    assert any(p.startswith(where) and "aliases" in p for p in found), found


def test_deep_nesting_is_an_error_at_its_line():
    text = "kind: Service\nid: a\nroles: " + "[" * 3000 + "]" * 3000 + "\n"
    found = problems_of({"deep.yaml": text})
    assert any(p.startswith("deep.yaml:3:") and "nested deeper" in p for p in found), found


def test_a_broken_template_is_an_error_when_the_rules_load():
    text = CHAIN.replace('message: "service credit due for {{ b.subject }}"',
                         'message: "service credit due for {{ b.subject }"')
    found = problems_of({"rules.yaml": text})
    assert len(found) == 1 and found[0].startswith("rules.yaml:37:") and "template" in found[0], found


@pytest.mark.parametrize("template", [
    "{{ (3 ** (3 * 10 ** 7)) % 7 }}",
    "{{ 2 ** 100000 }}",
    "{{ 'x' * 1000000000 }}",
    "{{ [1] * 1000000000 }}",
    "{{ (10 ** 1000) * (10 ** 1000) * (10 ** 1000) * (10 ** 1000) * (10 ** 1000) }}",
    "{% for i in range(100000000) %}x{% endfor %}",
])
def test_rendering_is_bounded(template):
    began = time.monotonic()
    text = render(template, {})
    assert time.monotonic() - began < 1
    assert len(text) <= MAX_OUTPUT + 100 and "error" in text


def test_output_is_capped_and_ordinary_arithmetic_still_works():
    assert render("{{ 2 ** 10 }} {{ 'ab' * 3 }} {{ 6 * 7 }}", {}) == "1024 ababab 42"
    long = render("{% for i in range(1000) %}{{ 'x' * 100 }}{% endfor %}", {})
    assert len(long) < MAX_OUTPUT + 50 and long.endswith("[cut: longer than the limit]")


def test_an_empty_rule_set_is_an_error():
    assert problems_of({}) and problems_of({"empty.yaml": "# nothing\n"})
