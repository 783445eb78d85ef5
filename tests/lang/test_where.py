"""``where`` evaluated in Python: the same answers as the compiled patterns, with reasons."""
from __future__ import annotations

from engine.lang.where import failure, lookup

FACT = {"id": "f1", "type": "incident.opened", "time": "2026-11-16T09:00:00Z", "subject": "INC-9",
        "service": "email", "data": {"priority": "p1", "impact": 3}}


def test_the_first_failing_condition_is_named():
    get = lookup(FACT)
    assert failure({"priority": "P1"}, get) == 'where priority: "p1" ≠ "P1"'
    assert failure({"priority": "p1", "service": "email"}, get) is None
    assert failure({"priority": {"in": ["P1", "P2"]}}, get) == 'where priority: "p1" is not one of ["P1", "P2"]'
    assert failure({"impact": {"gt": 5}}, get) == "where impact: 3 is not > 5"
    assert failure({"owner": {"exists": True}}, get) == "where owner: absent, expected present"
    assert failure({"owner": None}, get) is None
    assert failure({"priority": {"matches": "[pP]1"}}, get) is None
    assert failure({"any": [{"priority": "P1"}, {"impact": 3}]}, get) is None
    assert failure({"time": {"gte": "2026-11-16T10:00:00+01:00"}}, get) is None     # the same instant
