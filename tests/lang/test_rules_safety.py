"""Rules are parsed safely (issue 11, part 3): YAML aliases refused, deep nesting an error
at its line, templates compiled when the rules load (file:line), rendering bounded."""
from __future__ import annotations

import time

import pytest

from engine.lang.errors import RuleSetError
from engine.lang.loader import load_texts
from engine.lang.templates import MAX_OUTPUT, render
from tests.support import ROOT

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


@pytest.mark.parametrize("template, reason", [
    # loops without output: three nested over a list (no call inside to count)
    ("{% set r = range(1000)|list %}{% for i in r %}{% for j in r %}{% for k in r %}{% endfor %}{% endfor %}"
     "{% endfor %}", "rendering stopped after 50,000 steps"),
    ("{% for i in range(1000) %}{% for j in range(1000) %}{{ '' }}{% endfor %}{% endfor %}", "50,000 steps"),
    # a macro calling itself twice: 2**40 calls
    ("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}", "50,000 steps"),
    # one call that pads to a gigabyte
    ("{{ 'x'.center(10 ** 8) }}", "a width of 100,000,000"),
    ("{{ 'x'|center(10 ** 8) }}", "a width of 100,000,000"),
    ("{{ 'x'.ljust(10 ** 9) }}", "a width of 1,000,000,000"),
    ("{{ 'x'.zfill(10 ** 9) }}", "a width of 1,000,000,000"),
    ("{{ 'a\tb'.expandtabs(10 ** 9) }}", "a width of 1,000,000,000"),
    ("{{ 'x'|indent(10 ** 9) }}", "a width of 1,000,000,000"),
    ("{{ '%0999999999d'|format(1) }}", "format width"),
    ("{{ '%0999999999d' % 1 }}", "format width"),
    ("{{ '%.*f' % (10 ** 8, 1) }}", "format width"),
    ("{{ '{:>999999999}'.format(1) }}", "format width"),
    ("{{ '{:{w}}'.format(1, w=10 ** 9) }}", "format width"),
    # replace and join multiplying their input
    ("{{ ('x' * 4000)|replace('x', 'x' * 4000)|replace('x', 'x' * 4000) }}", "replace would make"),
    ("{{ ('x' * 4000).replace('x', 'x' * 4000) }}", "replace would make"),
    ("{{ range(1000)|join('x' * 4000) }}", "join would make about 4,0"),
    # every call that can grow a value, bounded before it runs (issue 20, item 12)
    ("{{ '\t'.ljust(8000, '\t').expandtabs(60000) }}", "expandtabs would make about 480,000,000"),
    ("{{ ('{0}' * 1000).format('x' * 4000) }}", "format would make"),
    ("{{ ('{0}' * 1000)|format('x' * 4000) }}", "format would make"),
    ("{{ ('%s' * 1000) % (('x' * 4000,) * 1000) }}", "would make"),
    ("{{ (['x' * 4000] * 1000)|join }}", "would make"),
    ("{{ ('x' * 60).join(['x' * 4000] * 1000) }}", "would make"),
    ("{{ (['x' * 4000] * 1000)|string }}", "the filter string would make"),
    ("{{ ('a' * 4000).translate({97: 'y' * 4000}) }}", "translate would make about 16,000,000"),
    ("{{ ('a\n' * 2000)|indent(4000) }}", "indent would make about 8,00"),
    ("{% set big = 'x' * 4000 %}{% set l = [big] * 1000 %}{{ l ~ l }}", "would make"),
    # doubling a string, by a namespace in a loop or by recursion
    ("{% set ns = namespace(x='x' * 4000) %}{% for i in range(100) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}"
     "{{ ns.x|length }}", "would make about 128,0"),
    ("{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% else %}{{ s|length }}{% endif %}{% endmacro %}"
     "{{ d('x', 60) }}", "would make about 65,5"),
    ("{{ range(10)|slice(10 ** 8)|list }}", "slice into 100,000,000 parts"),
    ("{{ lipsum(10 ** 6) }}", "'lipsum' is undefined"),
])
def test_hostile_templates_fail_their_rendering_with_the_reason(template, reason):
    text = render(template, {})
    assert text.startswith(template + " [template error: ") and reason in text, text


def test_a_growing_call_is_refused_before_it_allocates():
    import tracemalloc
    tracemalloc.start()
    try:
        text = render("{{ '\t'.ljust(8000, '\t').expandtabs(60000) }}", {})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "expandtabs would make" in text and peak < 4 * 1024 * 1024, peak       # was +343 MB


def test_ordinary_formatting_stays_allowed():
    assert render("{{ 'INC-1234567 %s'|format('x') }} {{ 'T-{} 7654321'.format(1) }} {{ '%.2f'|format(1.5) }} "
                  "{{ 'x'.center(5) }}|{{ 'a,b'.replace(',', ';') }} {{ [1, 2]|join('-') }} {{ 7 % 3 }} {{ -3 }} "
                  "{% for i in range(3) %}{{ loop.index }}{% endfor %}", {}) \
        == "INC-1234567 x T-1 7654321 1.50   x  |a;b 1-2 1 -3 123"


def test_output_is_capped_and_ordinary_arithmetic_still_works():
    assert render("{{ 2 ** 10 }} {{ 'ab' * 3 }} {{ 6 * 7 }}", {}) == "1024 ababab 42"
    long = render("{% for i in range(1000) %}{{ 'x' * 100 }}{% endfor %}", {})
    assert len(long) < MAX_OUTPUT + 50 and long.endswith("[cut: longer than the limit]")


def test_an_empty_rule_set_is_an_error():
    assert problems_of({}) and problems_of({"empty.yaml": "# nothing\n"})
