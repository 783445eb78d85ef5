"""Fuzzing what users hand us: rule files and facts.

Every input must end in success or a clean validation error (RuleSetError with places
inside the files, FactError naming fields) — never a traceback, never a half-loaded rule
set. ``SLM_FUZZ_EXAMPLES`` raises the number of examples (``make fuzz``).
"""
from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.eval.compiler import compile_ruleset
from engine.eval.engine import Engine
from engine.lang.errors import FactError, RuleSetError
from engine.lang.loader import load_rules, load_texts
from engine.service.validation import load_fact
from tests.support import PORTFOLIO

EXAMPLES = int(os.environ.get("SLM_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PORTFOLIO_FILES = {str(p.relative_to(PORTFOLIO.parent)): p.read_text() for p in sorted(PORTFOLIO.rglob("*.yaml"))}

KINDS = ["Calendar", "Roles", "Service", "Agreement", "Escalation", "Raci", "Rule", "Nonsense"]
KEYS = ["kind", "id", "name", "targets", "goal", "clock", "applies_to", "start", "stop", "pause", "warn_at",
        "service", "type", "status", "valid", "roles", "holders", "activities", "levels", "when", "then",
        "calendar", "availability", "window", "where", "underpinned_by", "timezone", "hours", "holidays"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=20), st.sampled_from(["15m", "99.9%", "P1", "incident.opened", "24x7",
                                                           "2026-11-02", "mon-fri 09:00-17:00", "-1h", "1e9d"]))
yaml_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)), max_leaves=20)
documents = st.fixed_dictionaries({"kind": st.sampled_from(KINDS), "id": st.text(max_size=12)},
                                  optional={k: yaml_values for k in KEYS[2:]})


def assert_clean(files: dict[str, str]) -> None:
    """Loads completely (and compiles) or fails with problems placed inside the files."""
    try:
        ruleset = load_texts(files)
    except RuleSetError as err:
        assert err.problems
        for problem in err.problems:
            assert problem.file in files, problem
            lines = files[problem.file].count("\n") + 2
            assert 1 <= problem.line <= lines and problem.column >= 1, problem
            assert problem.message.strip()
        return
    assert compile_ruleset(ruleset)            # a loaded set is a whole set: it compiles
    Engine(ruleset)


@FUZZ
@given(st.text(max_size=300))
def test_random_text_is_a_clean_error_or_a_rule_set(text):
    assert_clean({"fuzz.yaml": text})


@pytest.mark.slow
@FUZZ
@given(st.lists(documents, min_size=1, max_size=4))
def test_random_documents_of_every_kind_are_clean_errors_or_rule_sets(docs):
    import yaml
    text = yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True)
    assert_clean({"docs.yaml": text})


mutations = st.lists(st.tuples(st.sampled_from(["delete", "duplicate", "replace", "truncate", "indent", "swap"]),
                               st.integers(0, 10**6), st.text(max_size=12)), min_size=1, max_size=4)


def mutate(text: str, edits) -> str:
    lines = text.split("\n")
    for op, where, junk in edits:
        i = where % len(lines)
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "replace" and lines[i].strip():
            words = lines[i].split(" ")
            words[where % len(words)] = junk
            lines[i] = " ".join(words)
        elif op == "truncate":
            lines = lines[: i + 1]
            lines[-1] = lines[-1][: where % (len(lines[-1]) + 1)]
        elif op == "indent":
            lines[i] = " " * (where % 5) + lines[i]
        elif op == "swap" and i + 1 < len(lines):
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
        if not lines:
            lines = [""]
    return "\n".join(lines)


@pytest.mark.slow
@FUZZ
@given(st.sampled_from(sorted(PORTFOLIO_FILES)), mutations)
def test_mutated_shipped_rules_are_clean_errors_or_rule_sets(name, edits):
    files = dict(PORTFOLIO_FILES)
    files[name] = mutate(files[name], edits)
    assert_clean(files)


# ---- facts --------------------------------------------------------------------------------

FACT_KEYS = ["id", "source", "type", "time", "subject", "service", "data", "specversion", "datacontenttype",
             "extra"]
json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                                     st.text(max_size=15)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                           max_leaves=10)
times = st.one_of(st.datetimes(min_value=datetime(2026, 10, 1), max_value=datetime(2026, 12, 31),
                               timezones=st.sampled_from([UTC, None])).map(lambda d: d.isoformat()),
                  st.text(max_size=30), json_values)
fact_like = st.fixed_dictionaries(
    {"id": st.one_of(st.text(max_size=10), json_values), "source": st.sampled_from(["zabbix", "", "itsm/prod"]),
     "type": st.one_of(st.sampled_from(["incident.opened", "incident.acknowledged", "incident.resolved",
                                        "alert.firing", "alert.resolved", "decision.breach", "bad type"]),
                       st.text(max_size=12)),
     "time": times},
    optional={"subject": st.one_of(st.sampled_from(["INC-1", "INC-2"]), json_values),
              "service": st.one_of(st.sampled_from(["email", "hosting", "service-desk"]), json_values),
              "data": st.one_of(st.fixed_dictionaries({}, optional={
                  "priority": st.sampled_from(["P1", "P2", 1]), "alertname": st.sampled_from(["EmailDown", 3])}),
                  json_values),
              "specversion": st.sampled_from(["1.0", "0.3"]), "extra": json_values})


@pytest.fixture(scope="module")
def engine():
    return Engine(load_rules(PORTFOLIO))


@settings(max_examples=EXAMPLES * 3, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.one_of(fact_like, json_values))
def test_any_json_is_a_clean_fact_error_or_a_fact_the_engine_takes(engine, raw):
    try:
        fact = load_fact(raw)
    except FactError as err:
        assert err.details and all(isinstance(m, list) and m for m in err.details.values())
        return
    assert fact["time"].tzinfo is not None and fact["type"].count(" ") == 0
    engine.apply(raw)                       # whatever validates, the engine can apply
