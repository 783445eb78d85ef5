"""The quick fact loader (schemas.facts.quick_load) against the fact schema it stands in for.

``quick_load`` takes the common fact without marshmallow; whatever it returns must be what
``FactSchema().load`` returns (the same dict, keys in the same order), it must never take
a fact the schema refuses, and the service's ``load_fact`` must accept and refuse exactly
what the schema does, with the schema's messages.
"""
from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from engine.lang.errors import FactError
from engine.service.validation import load_fact
from schemas.facts import MAX_DATA_DEPTH, FactSchema, flatten_errors, quick_load

SCHEMA = FactSchema()


def by_schema(raw: object) -> tuple[str, object]:
    try:
        loaded = SCHEMA.load(raw)
    except ValidationError as err:
        return "refused", flatten_errors(err.messages)
    return "loaded", list(loaded.items())


def by_service(raw: dict) -> tuple[str, object]:
    try:
        loaded = load_fact(raw)
    except FactError as err:
        return "refused", err.details
    return "loaded", list(loaded.items())


# -- generated facts: mostly well-formed, each field now and then at or past a limit --------

def near(limit: int) -> st.SearchStrategy[str]:
    """Strings around ``limit`` characters long (and short ones, and empty)."""
    return st.one_of(st.text(string.ascii_letters + "-_.#%", min_size=0, max_size=12),
                     st.integers(limit - 2, limit + 2).map(lambda n: "x" * max(n, 0)))


awkward = st.sampled_from(["", "a\x00b", "\ud800", "ü", "INC-1", " ", "a" * 300])
texts = st.one_of(near(256), near(128), awkward)
types = st.one_of(st.sampled_from(["incident.opened", "incident.acknowledged", "metric.sample", "request.opened",
                                   "sli.counts", "decision.breach", "clock.running", "Incident.Opened", "a", "a.",
                                   ".a", "a..b", "incident opened", "x" * 127 + ".y", "a.b-c_d", "a.1"]),
                  texts)
times = st.one_of(
    st.sampled_from(["2026-11-02T09:00:00Z", "2026-11-02T09:00:00.5Z", "2026-11-02T10:00:00+01:00",
                     "2026-11-02t09:00:00z", "2026-11-02T09:00:00", "2026-11-02 09:00:00Z", "2026-11-02",
                     "2026-12-31T23:59:60Z", "2026-11-02T23:59:60Z", "1969-12-31T23:59:59Z", "1970-01-01T00:00:00Z",
                     "9999-01-01T00:00:00Z", "9999-01-01T00:00:00.000001Z", "2026-02-30T09:00:00Z",
                     "2026-11-02T09:00:00.123456789Z", "2026-W45-1T09:00:00Z", "now", ""]),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.integers(), st.none(), st.floats(allow_nan=False))
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**64, 2**64), st.floats(), texts,
                    st.sampled_from([2**63 - 1, -2**63, 2**63, -2**63 - 1, 1e-7, 1e300]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(texts, inner, max_size=4)),
                      max_leaves=12)


def deep(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth):
        value = {"n": value}
    return value


datas = st.one_of(st.none(), st.just({}), st.dictionaries(st.text(max_size=8), values, max_size=6),
                  st.sampled_from([deep(MAX_DATA_DEPTH - 1), deep(MAX_DATA_DEPTH), {f"k{i}": i for i in range(129)},
                                   {"v": list(range(4096))}, {"priority": "P1"}, {"good": 9, "total": 10}]),
                  values)
optional = {"subject": st.one_of(texts, st.none(), st.integers()),
            "service": st.one_of(texts, st.none(), st.booleans()),
            "data": datas, "specversion": st.sampled_from(["1.0", "0.3", None, 1.0]),
            "datacontenttype": st.one_of(st.just("application/json"), st.none(), st.integers()),
            "dataschema": st.one_of(st.just("https://example.org/s"), st.none()),
            "time_posted": st.just("2026-11-02T09:00:00Z"), "extra": st.integers()}
common = st.fixed_dictionaries(
    {"id": st.one_of(st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=10), texts)},
    optional={"source": st.one_of(st.just("zabbix/prod"), texts, st.integers()), "type": types, "time": times,
              **optional})
plain = st.fixed_dictionaries(
    {"id": st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=10), "source": st.just("tool"),
     "type": st.sampled_from(["incident.opened", "incident.resolved", "metric.sample"]),
     "time": st.sampled_from(["2026-11-02T09:00:00Z", "2026-11-02T10:00:00.25+01:00"])},
    optional={"subject": st.one_of(st.just("INC-1"), st.none()), "service": st.just("email"),
              "data": st.dictionaries(st.text(max_size=8), values, max_size=6)})
facts = st.one_of(plain, common)
PROPERTY = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(facts)
def test_the_quick_loader_takes_only_what_the_schema_loads_as_it_loads_it(raw):
    quick = quick_load(raw)
    if quick is not None:
        assert by_schema(raw) == ("loaded", list(quick.items()))


@PROPERTY
@given(facts)
def test_the_service_accepts_and_refuses_exactly_what_the_schema_does(raw):
    assert by_service(raw) == by_schema(raw)


@pytest.mark.parametrize("raw", [
    {"id": "f1", "source": "bench", "type": "incident.opened", "time": "2026-11-02T09:00:00.100000Z",
     "subject": "INC-1", "service": "email", "data": {"priority": "P1"}},
    {"id": "f2", "source": "zabbix/prod", "type": "metric.sample", "time": "2026-11-02T10:00:00+01:00",
     "service": "hosting", "data": {"name": "latency_p95", "value": 120.5, "labels": {"host": "web-1"}},
     "specversion": "1.0", "datacontenttype": "application/json"},
    {"id": "f3", "source": "portal", "type": "request.opened", "time": "2026-11-02T09:00:00Z", "subject": None},
])
def test_the_common_facts_take_the_quick_way(raw):
    quick = quick_load(raw)
    assert quick is not None
    assert list(quick.items()) == by_schema(raw)[1]


@pytest.mark.parametrize("raw", [
    {"id": "c1", "source": "sli", "type": "sli.counts", "time": "2026-11-02T09:00:00Z",
     "data": {"good": 9, "total": 10, "start": "2026-11-02T08:59:00Z"}},      # checked further by the schema
    {"id": "", "source": "x", "type": "incident.opened", "time": "2026-11-02T09:00:00Z"},
    {"id": "x", "source": "x", "type": "incident.opened", "time": "2026-11-02T09:00:00Z", "extra": 1},
    {"id": "x", "source": "x", "type": "incident.opened", "time": "2026-11-02T09:00:00Z", "data": {"n": 2**64}},
])
def test_what_the_quick_loader_leaves_to_the_schema(raw):
    assert quick_load(raw) is None
    assert by_service(raw) == by_schema(raw)
