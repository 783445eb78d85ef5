"""The engine end to end over real durable_rules: clocks, chaining, RACI, traces."""
from __future__ import annotations

import functools
import random
import textwrap
from datetime import timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine.eval.engine import Engine
from engine.lang.errors import FactError
from engine.lang.loader import load_texts
from engine.notify.route import notifications_for
from schemas.values import parse_instant


def records(engine) -> list[dict]:
    """The engine's decisions as the records the store keeps."""
    return [d.as_dict() for d in engine.decisions]


def notifications(engine) -> list[dict]:
    """The notifications the notify stage derives from the engine's decisions."""
    return [n.as_dict() for d in engine.decisions for n in notifications_for(d, engine.ruleset)]


def dicts(outcome) -> list[dict]:
    return [d.as_dict() for d in outcome.decisions]

BASE = textwrap.dedent("""\
    kind: Roles
    id: org-roles
    holders:
      slm_process_owner: owner@example.org
      lt_sponsor: lt@example.org
    ---
    kind: Service
    id: email
    roles:
      service_level_manager: slm-mail@example.org
      business_owner: owner@example.org
    ---
    kind: Raci
    id: raci
    activities:
      breach-warning: {service_level_manager: R, slm_process_owner: A}
      breach-handling: {service_level_manager: R, slm_process_owner: A, business_owner: I}
      major-breach: {service_level_manager: R, slm_process_owner: A, lt_sponsor: I}
      propose-improvement: {service_level_manager: R, slm_process_owner: A}
    ---
    kind: Agreement
    id: sla-email
    type: SLA
    service: email
    valid: {from: 2026-01-01, to: 2026-12-31}
    targets:
      - id: p1-response
        clock:
          applies_to: {type: incident.opened, where: {priority: P1}}
          pause: incident.pending
          resume: incident.resumed
          stop: incident.acknowledged
          restart: incident.reopened
        goal: 15m
        warn_at: [50%]
      - id: email-availability
        availability:
          down: {type: alert.firing, where: {alertname: EmailDown}}
          up: {type: alert.resolved, where: {alertname: EmailDown}}
          window: month
        goal: 99.9%
      - id: latency
        metric: {name: latency_p95, above: 300, window: day}
        goal: 99%
    ---
    kind: Escalation
    id: p1-escalation
    applies_to: {targets: [p1-response]}
    levels:
      - {at: 100%, activity: breach-handling}
      - {at: 100% + 2h, activity: major-breach, repeat: 4h}
    """)


def engine_for(extra: str = "", base: str = BASE) -> Engine:
    return Engine(load_texts({"rules.yaml": base + extra}))


def fact(ident, kind, time, subject="INC-1", service="email", **data):
    return {"id": ident, "source": "test", "type": kind, "time": time, "subject": subject,
            "service": service, "data": data}


def kinds(engine, target=None):
    return [(d["kind"], d.get("level"), d["at"][11:19]) for d in records(engine)
            if target is None or d.get("target") == target]


def test_pause_and_resume_stretch_the_deadline():
    engine = engine_for()
    engine.apply(fact("f1", "incident.opened", "2026-11-02T09:00:00Z", priority="P1"))
    engine.apply(fact("f2", "incident.pending", "2026-11-02T09:05:00Z"))
    engine.apply(fact("f3", "incident.resumed", "2026-11-02T09:35:00Z"))
    engine.advance(parse_instant("2026-11-02T10:00:00Z"))
    assert kinds(engine, "p1-response")[:3] == [("warning", "50%", "09:37:30"), ("breach", "100%", "09:45:00"),
                                                ("escalation", "100%", "09:45:00")]
    breach = next(d for d in records(engine) if d["kind"] == "breach")
    assert breach["data"] == {"counted": "15m", "budget": "15m", "paused": "30m"}


def test_stop_exactly_at_the_budget_is_met():
    engine = engine_for()
    engine.apply(fact("f1", "incident.opened", "2026-11-02T09:00:00Z", priority="P1"))
    engine.apply(fact("f2", "incident.acknowledged", "2026-11-02T09:15:00Z"))
    engine.advance(parse_instant("2026-11-02T12:00:00Z"))
    assert kinds(engine, "p1-response") == [("warning", "50%", "09:07:30"), ("met", None, "09:15:00")]


def test_facts_outside_the_where_or_the_validity_start_nothing():
    engine = engine_for()
    engine.apply(fact("f1", "incident.opened", "2026-11-02T09:00:00Z", priority="P3"))
    engine.apply(fact("f2", "incident.opened", "2027-01-02T09:00:00Z", subject="INC-2", priority="P1"))
    engine.advance(parse_instant("2027-01-03T00:00:00Z"))
    assert records(engine) == []


def test_escalation_repeats_every_4h_after_2h_past_breach_and_notifies_by_raci():
    engine = engine_for()
    engine.apply(fact("f1", "incident.opened", "2026-11-02T09:00:00Z", priority="P1"))
    engine.advance(parse_instant("2026-11-02T20:00:00Z"))
    majors = [d for d in records(engine) if d.get("activity") == "major-breach"]
    assert [d["at"][11:19] for d in majors] == ["11:15:00", "15:15:00", "19:15:00"]
    assert len({d["id"] for d in majors}) == 3
    notes = [(n["recipient"], n["raci"]) for n in notifications(engine) if n["decision"] == majors[0]["id"]]
    assert notes == [("lt@example.org", "I"), ("owner@example.org", "A"), ("slm-mail@example.org", "R")]


def test_one_person_with_two_roles_gets_one_notification_with_merged_letters():
    engine = engine_for()
    engine.apply(fact("f1", "incident.opened", "2026-11-02T09:00:00Z", priority="P1"))
    engine.advance(parse_instant("2026-11-02T09:30:00Z"))
    handling = [n for n in notifications(engine) if n["activity"] == "breach-handling"]
    owner = [n for n in handling if n["recipient"] == "owner@example.org"]
    assert len(owner) == 1 and owner[0]["raci"] == "A,I"
    assert owner[0]["roles"] == ["slm_process_owner", "business_owner"]


def test_reopened_starts_a_new_cycle():
    engine = engine_for()
    engine.apply(fact("f1", "incident.opened", "2026-11-02T09:00:00Z", priority="P1"))
    engine.apply(fact("f2", "incident.acknowledged", "2026-11-02T09:05:00Z"))
    engine.apply(fact("f3", "incident.reopened", "2026-11-02T10:00:00Z"))
    engine.advance(parse_instant("2026-11-02T10:20:00Z"))
    cycles = [(d["kind"], d["cycle"], d["at"][11:19]) for d in records(engine) if d["target"] == "p1-response"
              and d["kind"] in ("met", "breach")]
    assert cycles == [("met", 1, "09:05:00"), ("breach", 2, "10:15:00")]


def test_late_fact_retracts_a_breach_that_no_longer_holds():
    engine = engine_for()
    engine.apply(fact("f1", "incident.opened", "2026-11-02T09:00:00Z", priority="P1"))
    engine.advance(parse_instant("2026-11-02T09:30:00Z"))
    breach = next(d for d in records(engine) if d["kind"] == "breach")
    outcome = engine.apply(fact("f2", "incident.acknowledged", "2026-11-02T09:10:00Z"))
    produced = [(d["kind"], d.get("data", {}).get("retracts")) for d in dicts(outcome)]
    assert ("retracted", breach["id"]) in produced
    assert ("met", None) in produced
    assert breach in records(engine)  # superseded, never deleted


def test_same_facts_same_decisions_and_ids():
    facts = [fact("f1", "incident.opened", "2026-11-02T09:00:00Z", priority="P1"),
             fact("f2", "incident.pending", "2026-11-02T09:03:00Z"),
             fact("f3", "incident.resumed", "2026-11-02T09:04:00Z")]
    runs = []
    for _ in range(2):
        engine = engine_for()
        for item in facts:
            engine.apply(item)
        engine.advance(parse_instant("2026-11-02T16:00:00Z"))
        runs.append([(d["id"], d["kind"], d["at"]) for d in records(engine)])
    assert runs[0] == runs[1] and runs[0]


def test_duplicate_fact_is_a_no_op_returning_the_original_outcome():
    engine = engine_for()
    engine.apply(fact("f1", "incident.opened", "2026-11-02T09:00:00Z", priority="P1"))
    first = engine.apply(fact("f2", "incident.acknowledged", "2026-11-02T09:20:00Z"))
    again = engine.apply(fact("f2", "incident.acknowledged", "2026-11-02T09:20:00Z"))
    assert again.duplicate and [d["id"] for d in dicts(again)] == [d["id"] for d in dicts(first)]
    assert len(records(engine)) == len({d["id"] for d in records(engine)})


def test_bad_fact_is_rejected_with_field_details_and_changes_nothing():
    engine = engine_for()
    with pytest.raises(FactError) as caught:
        engine.apply({"id": "x", "source": "t", "type": "incident opened", "time": "yesterday", "bogus": 1})
    assert set(caught.value.details) == {"type", "time", "bogus"}
    assert engine.state.history.outcomes == {} and engine.now is None


def test_availability_overlapping_alerts_count_once():
    engine = engine_for()
    engine.apply(fact("a1", "alert.firing", "2026-11-02T09:00:00Z", subject="fp1", alertname="EmailDown"))
    engine.apply(fact("a2", "alert.firing", "2026-11-02T09:10:00Z", subject="fp2", alertname="EmailDown"))
    engine.apply(fact("a3", "alert.resolved", "2026-11-02T09:20:00Z", subject="fp1", alertname="EmailDown"))
    engine.apply(fact("a4", "alert.resolved", "2026-11-02T09:30:00Z", subject="fp2", alertname="EmailDown"))
    engine.advance(parse_instant("2026-12-01T00:00:00Z"))
    met = [d for d in records(engine) if d["target"] == "email-availability"]
    # budget: 0.1% of November (30 days) = 43m12s; down 09:00-09:30 = 30m, counted once
    assert [(d["kind"], d["subject"], d["at"]) for d in met] == [("met", "2026-11", "2026-12-01T00:00:00Z")]
    assert met[0]["data"]["counted"] == "30m" and met[0]["data"]["budget"] == "43m12s"


def test_availability_breach_when_down_past_the_error_budget():
    engine = engine_for()
    engine.apply(fact("a1", "alert.firing", "2026-11-02T09:00:00Z", subject="fp1", alertname="EmailDown"))
    engine.advance(parse_instant("2026-11-02T10:00:00Z"))
    assert [(d["kind"], d["at"]) for d in records(engine) if d["target"] == "email-availability"] == \
        [("breach", "2026-11-02T09:43:12Z")]


def test_threshold_counts_while_the_latest_sample_violates():
    engine = engine_for()
    engine.apply(fact("m1", "metric.sample", "2026-11-02T09:00:00Z", subject="web1", name="latency_p95", value=450))
    engine.apply(fact("m2", "metric.sample", "2026-11-02T09:10:00Z", subject="web1", name="latency_p95", value=120))
    engine.apply(fact("m3", "metric.sample", "2026-11-02T10:00:00Z", subject="web1", name="latency_p95", value=900))
    engine.advance(parse_instant("2026-11-03T00:00:00Z"))
    latency = [d for d in records(engine) if d["target"] == "latency"]
    # budget: 1% of a day = 14m24s; 10m before 09:10, then 4m24s after 10:00
    assert [(d["kind"], d["at"]) for d in latency] == [("breach", "2026-11-02T10:04:24Z")]


def standing(engine) -> list[tuple]:
    """The decisions in force: all but the retractions and what they retracted."""
    retracted = {d["data"]["retracts"] for d in records(engine) if d["kind"] == "retracted"}
    return sorted((d["kind"], d["target"], d["subject"], d["at"], d.get("data", {}).get("counted"))
                  for d in records(engine) if d["kind"] != "retracted" and d["id"] not in retracted)


@functools.lru_cache(maxsize=1)
def base_rules():
    return load_texts({"rules.yaml": BASE})


def sample(minute: int, subject: str, value: int) -> dict:
    return fact(f"m{minute}{subject}", "metric.sample", f"2026-11-02T{9 + minute // 60:02d}:{minute % 60:02d}:00Z",
                subject=subject, name="latency_p95", value=value)


@settings(max_examples=80, deadline=None)
@given(samples=st.lists(st.tuples(st.integers(0, 119), st.sampled_from(["web1", "web1", "web2"]),
                                  st.sampled_from([120, 450])),
                        min_size=1, max_size=12, unique_by=lambda s: s[0]),
       order=st.randoms(use_true_random=False))
@example(samples=[(0, "web1", 450), (5, "web1", 120), (60, "web1", 450)], order=random.Random(2))
def test_metric_samples_in_any_arrival_order_end_in_the_same_decisions(samples, order):
    """Late samples (healthy ones skip the replay of their window) change nothing in the end."""
    facts = [sample(*s) for s in samples]
    results = []
    for arrival in (sorted(facts, key=lambda f: f["time"]), order.sample(facts, len(facts))):
        engine = Engine(base_rules())
        for item in arrival:
            engine.apply(item)
        engine.advance(parse_instant("2026-11-03T00:00:01Z"))
        results.append(standing(engine))
    assert results[0] == results[1]
    assert any(kind in ("met", "breach") for kind, *_ in results[0])


def test_shadow_targets_decide_but_notify_nobody():
    draft = BASE.replace("status: agreed", "").replace("type: SLA\n", "type: SLA\nstatus: draft\n")
    engine = engine_for(base=draft)
    engine.apply(fact("f1", "incident.opened", "2026-11-02T09:00:00Z", priority="P1"))
    engine.advance(parse_instant("2026-11-02T10:00:00Z"))
    assert records(engine) and all(d["shadow"] for d in records(engine))
    assert notifications(engine) == []


COUNT_RULE = textwrap.dedent("""\
    ---
    kind: Rule
    id: repeated-breach
    when: {count: 3, of: {type: decision.breach}, same: [target], within: 30d}
    then:
      - decide: {kind: improvement-proposed, severity: minor,
                 message: "{{ target }} breached {{ count }} times in 30 days"}
      - notify: {activity: propose-improvement}
    """)


def test_counting_rule_chains_on_breach_decisions():
    engine = engine_for(COUNT_RULE)
    for day in (2, 3, 4):
        engine.apply(fact(f"f{day}", "incident.opened", f"2026-11-0{day}T09:00:00Z", subject=f"INC-{day}",
                          priority="P1"))
    engine.advance(parse_instant("2026-11-05T00:00:00Z"))
    proposals = [d for d in records(engine) if d["kind"] == "improvement-proposed"]
    assert len(proposals) == 1
    assert proposals[0]["message"] == "p1-response breached 3 times in 30 days"
    assert proposals[0]["at"] == "2026-11-04T09:15:00Z"
    assert {n["recipient"] for n in notifications(engine) if n["decision"] == proposals[0]["id"]} == \
        {"slm-mail@example.org", "owner@example.org"}
    trace = engine.trace(proposals[0]["id"])
    assert [child["kind"] for child in trace["children"]] == ["breach"] * 3
    assert trace["children"][0]["children"][0] == {"ref": "fact:test#f2", "fact": {
        "id": "f2", "source": "test", "type": "incident.opened", "time": "2026-11-02T09:00:00Z",
        "subject": "INC-2", "service": "email", "data": {"priority": "P1"}}}


def test_values_from_facts_are_never_rendered_as_templates():
    engine = engine_for(COUNT_RULE.replace("{{ target }} breached", "{{ subject }}: {{ target }} breached"))
    for day in (2, 3, 4):
        engine.apply(fact(f"f{day}", "incident.opened", f"2026-11-0{day}T09:00:00Z",
                          subject=f"{{{{ 7 * 7 }}}}-{day}", priority="P1"))
    engine.advance(parse_instant("2026-11-05T00:00:00Z"))
    proposal = next(d for d in records(engine) if d["kind"] == "improvement-proposed")
    notes = [n for n in notifications(engine) if n["decision"] == proposal["id"]]
    assert notes and {n["message"] for n in notes} == {"{{ 7 * 7 }}-2: p1-response breached 3 times in 30 days"}


def test_counting_rule_respects_the_window():
    engine = engine_for(COUNT_RULE)
    for day, ident in (("2026-10-01", "a"), ("2026-10-20", "b"), ("2026-11-04", "c")):
        engine.apply(fact(ident, "incident.opened", f"{day}T09:00:00Z", subject=ident, priority="P1"))
    engine.advance(parse_instant("2026-11-05T00:00:00Z"))
    assert not [d for d in records(engine) if d["kind"] == "improvement-proposed"]


def test_join_rule_matches_on_the_alias_field():
    join = textwrap.dedent("""\
        ---
        kind: Rule
        id: breach-while-down
        when:
          - {as: brk, type: decision.breach, where: {agreement_type: SLA, target: p1-response}}
          - {as: clk, type: clock.running, where: {service: $brk.service, target: email-availability}}
        then:
          - decide: {kind: correlated, message: "{{ brk.target }} breached while {{ clk.target }} runs"}
        """)
    engine = engine_for(join)
    engine.apply(fact("a1", "alert.firing", "2026-11-02T08:00:00Z", subject="fp1", alertname="EmailDown"))
    engine.apply(fact("f1", "incident.opened", "2026-11-02T09:00:00Z", priority="P1"))
    engine.advance(parse_instant("2026-11-02T09:20:00Z"))
    correlated = [d for d in records(engine) if d["kind"] == "correlated"]
    assert [d["message"] for d in correlated] == ["p1-response breached while email-availability runs"]
    assert correlated[0]["because"][1] == "clock:email-availability/2026-11"


def test_every_decision_names_its_rule_file_line_and_ruleset():
    engine = engine_for()
    engine.apply(fact("f1", "incident.opened", "2026-11-02T09:00:00Z", priority="P1"))
    engine.advance(parse_instant("2026-11-02T12:00:00Z"))
    for decision in records(engine):
        rule = decision["rule"]
        assert rule["file"] == "rules.yaml" and rule["line"] > 0
        assert rule["ruleset"] == engine.ruleset.version
    escalation = next(d for d in records(engine) if d["kind"] == "escalation")
    assert escalation["rule"]["id"] == "p1-escalation"
    breach = next(d for d in records(engine) if d["kind"] == "breach")
    assert breach["because"] == ["fact:test#f1", "clock:p1-response/INC-1"]


JOIN_AFTER = textwrap.dedent("""\
    ---
    kind: Rule
    id: breach-then-down
    when:
      - {as: brk, type: decision.breach, where: {agreement_type: SLA, target: p1-response}}
      - {as: clk, type: clock.running, where: {service: $brk.service, target: email-availability}}
    then:
      - decide: {kind: correlated, message: "{{ brk.target }} breached while {{ clk.target }} runs"}
    """)


def test_join_fires_when_the_clock_starts_after_the_breach():
    engine = engine_for(JOIN_AFTER)
    engine.apply(fact("f1", "incident.opened", "2026-11-02T09:00:00Z", priority="P1"))
    engine.advance(parse_instant("2026-11-02T09:30:00Z"))
    assert not [d for d in records(engine) if d["kind"] == "correlated"]
    outcome = engine.apply(fact("a1", "alert.firing", "2026-11-02T10:00:00Z", subject="fp1",
                                alertname="EmailDown"))
    breach = next(d for d in records(engine) if d["kind"] == "breach")
    assert [d["because"] for d in dicts(outcome) if d["kind"] == "correlated"] == \
        [[f"decision:{breach['id']}", "clock:email-availability/2026-11"]]


def test_a_retracted_breach_joins_nothing_later():
    engine = engine_for(JOIN_AFTER)
    engine.apply(fact("f1", "incident.opened", "2026-11-02T09:00:00Z", priority="P1"))
    engine.advance(parse_instant("2026-11-02T09:30:00Z"))
    engine.apply(fact("f2", "incident.acknowledged", "2026-11-02T09:10:00Z"))
    assert "retracted" in [d["kind"] for d in records(engine)]
    engine.apply(fact("a1", "alert.firing", "2026-11-02T10:00:00Z", subject="fp1", alertname="EmailDown"))
    assert not [d for d in records(engine) if d["kind"] == "correlated"]


def test_durable_rules_memory_keeps_only_facts_a_join_could_use():
    engine = engine_for(JOIN_AFTER)
    engine.apply(fact("a1", "alert.firing", "2026-11-02T08:00:00Z", subject="fp1", alertname="EmailDown"))
    for n in range(3):
        engine.apply(fact(f"f{n}", "incident.opened", "2026-11-02T09:00:00Z", subject=f"INC-{n}", priority="P1"))
    engine.advance(parse_instant("2026-11-02T12:00:00Z"))
    # three breaches joined the running availability clock; the p1-response clocks, the
    # warnings and escalations could join nothing and are not kept
    assert len([d for d in records(engine) if d["kind"] == "correlated"]) == 3
    kept = sorted((f["type"], f["data"].get("target")) for f in engine.state.held.values())
    assert kept == [("clock.running", "email-availability")] + [("decision.breach", "p1-response")] * 3


def test_join_filter_keeps_every_fact_durable_rules_could_join():
    """The filter may keep too much, never too little: whatever passes a join pattern's own
    tests in durable_rules (references to the other pattern left out) must be kept."""
    import itertools
    import json

    import durable_rules_engine

    from engine.eval.compiler import join_filter, pattern

    ruleset = load_texts({"rules.yaml": BASE + JOIN_AFTER + textwrap.dedent("""\
        ---
        kind: Rule
        id: many-tests
        when:
          - as: a
            type: decision.breach
            where: {target: {in: [p1-response, latency]}, level: {ne: "50%"}, any: [{service: email}, {cycle: 2}]}
          - {as: b, type: decision.warning, where: {subject: $a.subject, agreement_type: OLA}}
        then:
          - decide: {kind: x}
        """)})
    may_join = join_filter(ruleset)

    def own_tests(test):
        """A pattern's tests without those that refer to another pattern."""
        if list(test) in (["$and"], ["$or"]):
            (op, parts), = test.items()
            kept = [own_tests(p) for p in parts]
            kept = [p for p in kept if p is not None]
            return None if not kept else {op: kept}
        (key, value), = test.items()
        return None if isinstance(value, dict) and not key.startswith("$") else test

    rules = {f"r{i}": {"all": [{"m": own_tests(pattern(p))}]}
             for i, p in enumerate(p for rule in ruleset.rules.values() for p in rule.when.get("patterns", [])
                                   if len(rule.when["patterns"]) > 1)}
    handle = durable_rules_engine.create_ruleset("probe", json.dumps(rules))
    values = {"type": ["decision.breach", "decision.warning", "clock.running", "incident.opened"],
              "target": ["p1-response", "latency", "email-availability", 7, None],
              "agreement_type": ["SLA", "OLA", None], "service": ["email", "web", None],
              "level": ["50%", "100%", None], "cycle": [1, 2, "2", None]}
    checked = 0
    for n, combo in enumerate(itertools.product(*values.values())):
        item = dict(zip(values, combo, strict=True))
        durable = {"sid": "0", "id": f"p{n}", "type": item.pop("type"), "subject": "S",
                   "data": {k: v for k, v in item.items() if k != "service" and v is not None}}
        if item["service"] is not None:
            durable["service"] = item["service"]
        matched = durable_rules_engine.assert_fact(handle, json.dumps(durable))[0] == 0
        if matched:
            durable_rules_engine.retract_fact(handle, json.dumps(durable))
            checked += 1
            assert may_join(durable), durable
    assert checked > 50
    assert not may_join({"type": "decision.breach", "subject": "S", "service": "email",
                         "data": {"agreement_type": "OLA", "target": "email-availability"}})
    durable_rules_engine.delete_ruleset(handle)


def test_marks_tied_on_amount_fire_in_a_fixed_order():
    """Two escalations with the same level on one target: which one decides must not
    depend on where Python happened to allocate the marks."""
    extra = textwrap.dedent("""\
        ---
        kind: Escalation
        id: zz-escalation
        applies_to: {targets: [p1-response]}
        levels:
          - {at: 100%, activity: breach-handling}
        """)
    winners = set()
    ballast = []
    for n in range(20):
        ballast.append([object() for _ in range(n * 37)])     # shift where objects land
        engine = engine_for(extra)
        engine.apply(fact("f1", "incident.opened", "2026-11-02T09:00:00Z", priority="P1"))
        engine.advance(parse_instant("2026-11-02T09:20:00Z"))
        winners.add(tuple((d["rule"]["id"], d["id"]) for d in records(engine) if d["kind"] == "escalation"))
    assert len(winners) == 1


def test_a_fact_whose_id_hashes_like_a_held_one_is_still_matched():
    """durable_rules knows held facts by a 32-bit FNV-1 hash of their id only, and refuses
    a new fact whose id hashes the same as "already observed"."""
    from engine.lang.loader import load_rules
    from tests.support import PORTFOLIO

    def fnv1(text):
        value = 0x811c9dc5
        for byte in text.encode():
            value = ((value ^ byte) * 16777619) & 0xFFFFFFFF
        return value

    assert fnv1("f40955") == fnv1("clock:email-p1-response/INC-25480#1")
    engine = Engine(load_rules(PORTFOLIO))
    engine.apply(fact("o1", "incident.opened", "2026-11-02T09:00:00Z", subject="INC-25480", priority="P1"))
    assert "clock:email-p1-response/INC-25480#1" in engine.state.held      # held for the join
    engine.state.seq = 40954          # the next fact goes to durable_rules as f40955
    outcome = engine.apply(fact("a1", "incident.acknowledged", "2026-11-02T09:05:00Z", subject="INC-25480"))
    assert sorted(d["target"] for d in dicts(outcome) if d["kind"] == "met") == \
        ["email-p1-response", "ola-mx-p1-response"]


def test_finished_clocks_are_forgotten_after_retain_and_running_ones_kept():
    engine = Engine(load_texts({"rules.yaml": BASE}), history=False, retain=timedelta(days=1))
    engine.apply(fact("o1", "incident.opened", "2026-11-02T09:00:00Z", subject="INC-1", priority="P1"))
    engine.apply(fact("a1", "incident.acknowledged", "2026-11-02T09:05:00Z", subject="INC-1"))
    engine.apply(fact("o2", "incident.opened", "2026-11-02T10:00:00Z", subject="INC-2", priority="P1"))
    engine.apply(fact("r1", "incident.opened", "2026-11-04T10:00:00Z", subject="INC-3", priority="P1"))
    assert engine.prune() == 1                             # INC-1's stopped clock, two days old
    assert engine.prune() == 0
    running = {c["subject"] for c in engine.clocks()}
    assert running == {"INC-2", "INC-3"}                   # INC-2 breached long ago but still runs
    late = engine.apply(fact("p1", "incident.pending", "2026-11-02T09:01:00Z", subject="INC-1"))
    assert dicts(late) == []                            # a fact for a forgotten clock: ignored
    later = engine.advance(parse_instant("2026-11-09T00:00:00Z"))   # stale schedule entries pass by
    assert {d["subject"] for d in dicts(later)} <= {"INC-2", "INC-3"}


def test_a_forgotten_clock_leaves_no_schedule_behind():
    engine = Engine(load_texts({"rules.yaml": BASE}), history=False, retain=timedelta(seconds=30))
    engine.apply(fact("o1", "incident.opened", "2026-11-02T09:00:00Z", subject="INC-1", priority="P1"))
    engine.apply(fact("a1", "incident.acknowledged", "2026-11-02T09:05:00Z", subject="INC-1"))
    engine.apply(fact("x", "incident.resumed", "2026-11-02T09:06:00Z", subject="INC-9"))
    assert engine.prune() == 1                       # its 50% mark (09:07:30) is still scheduled
    assert engine.next_deadline() is None
    assert dicts(engine.advance(parse_instant("2026-11-02T10:00:00Z"))) == []


@pytest.mark.slow
def test_rules_beyond_one_durable_rules_ruleset_are_sharded_and_decide_the_same():
    """durable_rules links at most 512 tests to one test node (beyond, create_ruleset never
    returns): 2,700 targets whose ``where`` differ by queue, 540 per priority, need
    several rulesets; each fact still starts exactly its target's clock, and the other
    targets and the join decide as they do without those 2,700."""
    many = "---\nkind: Agreement\nid: ola-queues\ntype: OLA\nservice: email\ntargets:\n" + "".join(
        f"  - {{id: t{n}, clock: {{applies_to: {{type: incident.opened, where: {{priority: P{n % 5}, "
        f"queue: q{n}}}}}, stop: [incident.acknowledged]}}, goal: 15m}}\n" for n in range(2700))
    engine, alone = engine_for(JOIN_AFTER + many), engine_for(JOIN_AFTER)
    assert engine.context.network.shards[0] > 1 and alone.context.network.shards[0] == 1
    facts = [fact("o1", "incident.opened", "2026-11-02T09:00:00Z", subject="INC-1", priority="P1", queue="q2321"),
             fact("o2", "incident.opened", "2026-11-02T09:00:00Z", subject="INC-2", priority="P2", queue="q7"),
             fact("o3", "incident.opened", "2026-11-02T09:00:00Z", subject="INC-3", priority="P2", queue="q2699"),
             fact("o4", "incident.opened", "2026-11-02T09:01:00Z", subject="INC-4", priority="P1"),
             fact("a1", "incident.acknowledged", "2026-11-02T09:05:00Z", subject="INC-1"),
             fact("a2", "alert.firing", "2026-11-02T09:06:00Z", subject="fp1", alertname="EmailDown")]
    for one in facts[:3]:
        engine.apply(one)
    assert sorted((c["target"], c["subject"]) for c in engine.clocks() if c["agreement"] == "ola-queues") == \
        [("t2321", "INC-1"), ("t7", "INC-2")]                    # P2 q2699: none (t2699 is P4)
    for one in facts[3:]:
        engine.apply(one)
    for one in facts:
        alone.apply(one)
    engine.advance(parse_instant("2026-11-02T12:00:00Z"))
    alone.advance(parse_instant("2026-11-02T12:00:00Z"))
    ours = [(d["kind"], d["target"], d["subject"]) for d in records(engine) if d.get("agreement") == "ola-queues"]
    assert ("met", "t2321", "INC-1") in ours and ("breach", "t7", "INC-2") in ours
    assert {target for _, target, _ in ours} == {"t2321", "t7"}
    def same(decisions):                     # "rule" names the rule set by its hash: they differ
        return [{k: v for k, v in d.items() if k != "rule"} for d in decisions if d.get("agreement") != "ola-queues"]
    assert same(records(engine)) == same(records(alone))
    assert [d["subject"] for d in records(engine) if d["kind"] == "correlated"] == ["INC-4"]
    assert sorted(engine.state.held) == sorted(alone.state.held)


def test_required_strings_only_names_what_every_pattern_of_a_type_needs():
    from engine.eval.compiler import RULESET, required_strings
    definition = {RULESET: {
        "a": {"all": [{"m": {"$and": [{"type": "incident.opened"}, {"data.queue": "q1"}, {"service": "email"}]}}]},
        "b": {"all": [{"m": {"$and": [{"type": "incident.opened"},
                                      {"$or": [{"data.queue": "q2"}, {"data.queue": "q3"}]}]}}]},
        "c": {"all": [{"m": {"$and": [{"type": "alert.firing"}, {"$or": [{"data.a": "x"}, {"data.b": "y"}]}]}}]},
        "d": {"all": [{"m": {"$and": [{"type": "metric.sample"}, {"$gt": {"data.value": 3}}]}}]},
    }}
    assert required_strings(definition) == {
        "incident.opened": {"data.queue": frozenset({"q1", "q2", "q3"})},   # service: not in b
        "alert.firing": {},                                                  # $or over two paths
        "metric.sample": {},
    }
    assert required_strings({RULESET: {"any": {"all": [{"m": {"data.queue": "q1"}}]}}}) is None


def test_rule_decisions_are_retracted_with_the_decisions_they_rest_on():
    """Truth maintenance: late acknowledgements retract three response breaches and the OLA
    breaches; the improvement proposal counted from those breaches and each OLA-threatens-SLA
    decision joined on them are retracted too, each with a recorded reason."""
    from engine.lang.loader import load_rules
    from tests.support import PORTFOLIO
    engine = Engine(load_rules(PORTFOLIO))
    for n, day in enumerate(("02", "10", "20")):
        subject = f"INC-4{n}"
        engine.apply(fact(f"o{n}", "incident.opened", f"2026-11-{day}T09:00:00Z", subject, priority="P1"))
        engine.apply(fact(f"r{n}", "incident.resolved", f"2026-11-{day}T10:00:00Z", subject))
    made = records(engine)
    proposal = next(d for d in made if d["kind"] == "improvement-proposed")
    threatened = [d for d in made if d["kind"] == "ola-breach-threatens-sla"]
    assert len({d["id"] for d in threatened}) == 6          # both SLA clocks of each ticket run
    for n, day in enumerate(("02", "10", "20")):      # each acknowledged at 09:05, posted late
        engine.apply(fact(f"a{n}", "incident.acknowledged", f"2026-11-{day}T09:05:00Z", f"INC-4{n}"))
    retractions = {d["data"]["retracts"]: d for d in records(engine) if d["kind"] == "retracted"}
    for rule_decision in [proposal, *threatened]:
        assert rule_decision["id"] in retractions, rule_decision["kind"]
        reason = retractions[rule_decision["id"]]["data"]["reason"]
        assert reason.startswith("rests on breach dec_") and reason.endswith("which was retracted")
    standing = [d for d in records(engine) if d["kind"] == "breach" and d["id"] not in retractions]
    assert standing == []
    # the retraction of the proposal names the retracted breach it rested on
    because = retractions[proposal["id"]]["because"]
    assert because[0] == f"decision:{proposal['id']}" and because[1][9:] in retractions


def test_a_retracted_breach_leaves_the_count_window():
    """A breach retracted before the count is complete no longer counts towards it."""
    from engine.lang.loader import load_rules
    from tests.support import PORTFOLIO
    engine = Engine(load_rules(PORTFOLIO))
    engine.apply(fact("o0", "incident.opened", "2026-11-02T09:00:00Z", "INC-50", priority="P1"))
    engine.apply(fact("r0", "incident.resolved", "2026-11-02T10:00:00Z", "INC-50"))
    engine.apply(fact("a0", "incident.acknowledged", "2026-11-02T09:05:00Z", "INC-50"))   # retracts it
    for n, day in ((1, "10"), (2, "20")):
        engine.apply(fact(f"o{n}", "incident.opened", f"2026-11-{day}T09:00:00Z", f"INC-5{n}", priority="P1"))
        engine.apply(fact(f"r{n}", "incident.resolved", f"2026-11-{day}T10:00:00Z", f"INC-5{n}"))
    assert [d for d in records(engine) if d["kind"] == "improvement-proposed"] == []


def test_a_lifecycle_fact_moves_only_the_clocks_of_its_own_service():
    """INC-1 of hosting is not INC-1 of email: acknowledging one stops none of the other's clocks."""
    from engine.lang.loader import load_rules
    from tests.support import PORTFOLIO
    engine = Engine(load_rules(PORTFOLIO))
    engine.apply(fact("o1", "incident.opened", "2026-11-02T09:00:00Z", "INC-1", "email", priority="P1"))
    engine.apply(fact("a1", "incident.acknowledged", "2026-11-02T09:05:00Z", "INC-1", "hosting"))
    engine.advance(parse_instant("2026-11-02T09:30:00Z"))
    email = {(d["kind"], d["target"]) for d in records(engine) if d["service"] == "email"}
    assert ("breach", "email-p1-response") in email and ("met", "email-p1-response") not in email


def test_a_rule_decisions_trace_shows_the_reading_of_the_clock_it_joined():
    """ola-breach-threatens-sla joins a running SLA clock: its trace shows what that clock
    had counted when the Rule decided, and the clock's definition with its text."""
    from engine.lang.loader import load_rules
    from tests.support import PORTFOLIO
    engine = Engine(load_rules(PORTFOLIO))
    engine.apply(fact("o1", "incident.opened", "2026-11-02T09:00:00Z", "INC-7", priority="P1"))
    engine.advance(parse_instant("2026-11-02T09:11:00Z"))
    threat = next(d for d in records(engine) if d["kind"] == "ola-breach-threatens-sla")
    clocks = [c for c in engine.trace(threat["id"])["children"] if "clock" in c]
    assert clocks and all(c["reading"]["counted"] == "10m" and c["reading"]["budget"] for c in clocks)
    assert all(c["rule"]["text"].lstrip().startswith("- id: email-p1-") for c in clocks)
