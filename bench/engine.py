"""Facts per second through the Engine on the shipped rules, beside bare durable_rules
posting the same facts to an equivalent hand-written ruleset in the same run, and how
per-fact time changes from 10 to 1,000 targets. Run: .venv/bin/python bench/engine.py
"""
from __future__ import annotations

import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from durable.engine import Host, MessageNotHandledException

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from engine.loader import load_rules, load_texts  # noqa: E402
from engine.runtime import Engine  # noqa: E402

START = datetime(2026, 11, 2, 9, tzinfo=timezone.utc)


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


def run_engine(ruleset, facts) -> float:
    engine = Engine(ruleset)
    began = time.perf_counter()
    for fact in facts:
        engine.apply(fact)
    return time.perf_counter() - began


class _Bare(Host):
    def _run(self):
        pass

    def get_action(self, name):
        return lambda c: None


def run_bare(facts) -> float:
    """The same matching work by hand: one rule per clock role, facts asserted then retracted."""
    host = _Bare()
    host.set_rulesets({"bare": {
        "applies": {"all": [{"m": {"$and": [{"type": "incident.opened"}, {"data.priority": "P1"},
                                           {"service": "email"}]}}], "run": "a"},
        "start": {"all": [{"m": {"type": "incident.opened"}}], "run": "s"},
        "stop": {"all": [{"m": {"type": "incident.acknowledged"}}], "run": "t"},
    }})
    began = time.perf_counter()
    for index, fact in enumerate(facts):
        durable = {"sid": "0", "id": str(index), **{k: v for k, v in fact.items() if k != "id"}}
        try:
            host.assert_fact("bare", dict(durable))
        except MessageNotHandledException:
            pass
        host.retract_fact("bare", durable)
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


def main() -> None:
    facts = incident_facts(4000)
    shipped = load_rules(Path(__file__).resolve().parent.parent / "rules")
    engine_s = min(run_engine(shipped, facts) for _ in range(3))
    bare_s = min(run_bare(facts) for _ in range(3))
    print(f"facts: {len(facts)} (incident.opened/acknowledged, P1, service email)")
    print(f"engine on shipped rules ({len(shipped.targets)} targets): {len(facts) / engine_s:9.0f} facts/s")
    print(f"bare durable_rules, 3-rule ruleset:        {len(facts) / bare_s:9.0f} facts/s")
    print(f"ratio engine/bare: {bare_s / engine_s:.2f}")
    print("per-fact time by number of targets (facts match one target's where):")
    for targets in (10, 100, 1000):
        ruleset = load_texts(synthetic_rules(targets))
        seconds = min(run_engine(ruleset, facts[:2000]) for _ in range(2))
        print(f"  {targets:5d} targets: {seconds / 2000 * 1e6:8.1f} µs/fact")


if __name__ == "__main__":
    main()
