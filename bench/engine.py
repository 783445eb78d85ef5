"""Facts per second through the Engine on the shipped rules, beside bare durable_rules
posting the same facts to an equivalent hand-written ruleset in the same run, and how
per-fact time changes from 10 to 10,000 targets. Run: .venv/bin/python bench/engine.py

Two bare baselines, each one assert and one retract per fact through durable_rules' own
Host, with actions that do nothing: a 3-rule hand-written ruleset, and the shipped rules
as the engine compiles them (the same network, so the ratio is the engine's work on top
of durable_rules' matching). The engine also runs four clocks per incident and turns
their deadlines into decisions and notifications, so the work it did per fact is
printed beside its rate.

``--clocks N [N ...]``: instead, open N P1 incidents (1 ms apart, so no deadline falls),
then acknowledge 2,000 of them: per-fact time early and late, and resident memory, while
4 x N clocks run.
"""
from __future__ import annotations

import argparse
import os
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from durable.engine import Host, MessageNotHandledException

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from restart import history  # the restart benchmark's history: one definition

from engine.eval.compiler import compile_ruleset
from engine.eval.engine import Engine
from engine.lang.loader import load_rules, load_texts

START = datetime(2026, 11, 2, 9, tzinfo=UTC)


def incident_facts(count: int, service: str = "email") -> list[dict]:
    """Incidents opened, half acknowledged in time, a minute apart per incident."""
    facts = []
    for n in range(count // 2):
        at = START + timedelta(seconds=20 * n)
        facts.append({"id": f"o{n}", "source": "bench", "type": "incident.opened", "time": at.isoformat(),
                      "subject": f"INC-{n}", "service": service, "data": {"priority": "P1"}})
        facts.append({"id": f"a{n}", "source": "bench", "type": "incident.acknowledged",
                      "time": (at + timedelta(minutes=5 if n % 2 else 30)).isoformat(),
                      "subject": f"INC-{n}", "service": service, "data": {}})
    facts.sort(key=lambda f: f["time"])
    return facts


def queued(facts: list[dict], targets: int) -> list[dict]:
    """The facts, each incident routed to one synthetic target's queue (and priority), so
    that its opening matches exactly one target's ``where``."""
    out = []
    for fact in facts:
        n = int(fact["subject"].split("-")[1]) % targets
        data = {"priority": f"P{n % 5}", "queue": f"q{n}"} if fact["type"] == "incident.opened" else {}
        out.append({**fact, "data": data})
    return out


def run_engine(ruleset, facts, out: list | None = None, replay: bool = False) -> float:
    """The engine as the service runs it: facts already validated (the service does that
    before taking the write lock), no in-memory history; ``replay``: as a restart replays
    stored facts (nothing rendered). Returns seconds; appends the number of decisions made
    to ``out``."""
    engine = Engine(ruleset, history=False)
    engine.render = not replay
    loaded = [engine.validate(fact) for fact in facts]
    decided = 0
    began = time.perf_counter()
    for fact in loaded:
        decided += len(engine.apply_loaded(fact).decisions)
    elapsed = time.perf_counter() - began
    if out is not None:
        out.append(decided)
    return elapsed


class _Bare(Host):
    def _run(self):
        pass

    def get_action(self, name):
        return lambda c: None


def hand_written() -> dict:
    return {"bare": {
        "applies": {"all": [{"m": {"$and": [{"type": "incident.opened"}, {"data.priority": "P1"},
                                           {"service": "email"}]}}], "run": "a"},
        "start": {"all": [{"m": {"type": "incident.opened"}}], "run": "s"},
        "stop": {"all": [{"m": {"type": "incident.acknowledged"}}], "run": "t"},
    }}


def run_bare(facts, rulesets: dict) -> float:
    """Matching alone: each fact asserted, then retracted, actions that do nothing.
    (durable_rules consumes ``rulesets``: pass a fresh one each time.)"""
    host = _Bare()
    (name, _), = rulesets.items()
    host.set_rulesets(rulesets)
    durables = [{"sid": "0", "id": str(index), "fid": fact["id"],
                 "ts": datetime.fromisoformat(fact["time"]).timestamp(),
                 **{k: v for k, v in fact.items() if k != "id"}} for index, fact in enumerate(facts)]
    began = time.perf_counter()
    for durable in durables:
        try:
            host.assert_fact(name, dict(durable))
        except MessageNotHandledException:
            pass
        host.retract_fact(name, durable)
    return time.perf_counter() - began


def synthetic_rules(targets: int) -> dict[str, str]:
    head = textwrap.dedent("""\
        kind: Roles
        id: roles
        holders: {slm_process_owner: owner@example.org}
        ---
        kind: Service
        id: email
        roles: {service_level_manager: slm@example.org}
        ---
        kind: Raci
        id: raci
        activities:
          breach-handling: {service_level_manager: R, slm_process_owner: A}
        ---
        kind: Agreement
        id: sla
        type: SLA
        service: email
        targets:
        """)
    body = "".join(textwrap.dedent(f"""\
          - id: t{n}
            clock:
              applies_to: {{type: incident.opened, where: {{priority: P{n % 5}, queue: q{n}}}}}
              stop: incident.acknowledged
            goal: 15m
            warn_at: [75%]
        """) for n in range(targets))
    return {"rules.yaml": head + body}


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def many_clocks(count: int, shipped) -> None:
    """Per-fact time and memory while 4 x count clocks run (P1 email: two SLA, two OLA)."""
    engine = Engine(shipped)
    before = _rss_mb()
    tenth = max(count // 10, 1)
    opened = [{"id": f"o{n}", "source": "bench", "type": "incident.opened",
               "time": (START + timedelta(milliseconds=n)).isoformat(), "subject": f"INC-{n}",
               "service": "email", "data": {"priority": "P1"}} for n in range(count)]
    marks = []
    for n, fact in enumerate(opened):
        if n % tenth == 0:
            marks.append(time.perf_counter())
        engine.apply(fact)
    marks.append(time.perf_counter())
    grown = _rss_mb() - before
    acks = [{"id": f"a{n}", "source": "bench", "type": "incident.acknowledged",
             "time": (START + timedelta(milliseconds=count + n)).isoformat(), "subject": f"INC-{n}",
             "service": "email", "data": {}} for n in range(min(2000, count))]
    began = time.perf_counter()
    for fact in acks:
        engine.apply(fact)
    ack_us = (time.perf_counter() - began) / len(acks) * 1e6
    print(f"{count:7d} incidents: open first/last tenth {(marks[1] - marks[0]) / tenth * 1e6:6.0f}/"
          f"{(marks[-1] - marks[-2]) / tenth * 1e6:6.0f} µs/fact, then ack {ack_us:6.0f} µs/fact; "
          f"RSS +{grown:7.1f} MB ({grown * 1024 / count:5.1f} KB/incident); "
          f"facts held by durable_rules: {len(engine.state.held)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clocks", type=int, nargs="+", metavar="N")
    args = parser.parse_args()
    shipped = load_rules(Path(__file__).resolve().parent.parent / "rules")
    if args.clocks:
        for count in args.clocks:
            many_clocks(count, shipped)
        return
    facts = incident_facts(4000)
    decided: list = []
    engine_s = min(run_engine(shipped, facts, decided) for _ in range(3))
    bare_s = min(run_bare(facts, hand_written()) for _ in range(3))
    same_s = min(run_bare(facts, compile_ruleset(shipped)) for _ in range(3))
    print(f"facts: {len(facts)} (incident.opened/acknowledged, P1, service email)")
    print(f"engine on shipped rules ({len(shipped.targets)} targets): {len(facts) / engine_s:9.0f} facts/s"
          f"  ({decided[-1] / len(facts):.1f} decisions per fact)")
    print(f"bare durable_rules, 3-rule ruleset:        {len(facts) / bare_s:9.0f} facts/s  (matching only)")
    print(f"bare durable_rules, shipped rules compiled: {len(facts) / same_s:8.0f} facts/s  (matching only)")
    print(f"ratio engine/bare: {bare_s / engine_s:.2f} (3-rule ruleset), {same_s / engine_s:.2f} (same rules)")
    mixed = history(12_000, datetime.now(UTC))
    replayed: list = []
    replay_s = min(run_engine(shipped, mixed, replayed, replay=True) for _ in range(3))
    mixed_bare_s = min(run_bare(mixed, compile_ruleset(shipped)) for _ in range(3))
    print(f"replay mix: {len(mixed)} facts (incidents and requests of 3 services: opened, acknowledged, "
          f"resolved), {replayed[-1] / len(mixed):.1f} decisions per fact")
    print(f"  engine, replaying: {len(mixed) / replay_s:9.0f} facts/s;  bare durable_rules, same rules: "
          f"{len(mixed) / mixed_bare_s:9.0f} facts/s;  ratio {mixed_bare_s / replay_s:.2f}")
    print("per-fact time by number of targets (facts match one target's where):")
    for targets in (10, 100, 1000, 10_000):
        began = time.perf_counter()
        ruleset = load_texts(synthetic_rules(targets))
        Engine(ruleset)
        setup = time.perf_counter() - began
        seconds = min(run_engine(ruleset, queued(facts[:2000], targets)) for _ in range(2))
        print(f"  {targets:6,d} targets: {seconds / 2000 * 1e6:8.1f} µs/fact   (load + compile {setup:5.1f}s)")


if __name__ == "__main__":
    main()
