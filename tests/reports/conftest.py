"""A service whose agreements have credits and customers, behind the real API, on SQLite
and PostgreSQL: the reports' fixture."""
from __future__ import annotations

import pytest

from api.app import create_app
from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import fact, small_rules

# email: a 99.9% monthly availability target on 24x7 and a P1 response target, for the
# customer Finance, credited by availability; an OLA for Platform team credited by compliance.
# November has 43,200 minutes: 99.9% allows 43m12s of downtime.
CREDIT_RULES = """\
kind: Service
id: email
roles: {service_owner: owner@example.org, service_level_manager: slm-mail@example.org}
---
kind: Raci
id: raci
activities:
  breach-handling: {service_level_manager: R, service_owner: A}
---
kind: Escalation
id: escalation
applies_to: {targets: [email-availability, email-p1-response, ola-p1-response]}
levels: [{at: 100%, activity: breach-handling}]
---
kind: Agreement
id: sla-email
type: SLA
service: email
customer: Finance
targets:
  - id: email-availability
    availability:
      down: {type: alert.firing, where: {alertname: EmailDown}}
      up: {type: alert.resolved, where: {alertname: EmailDown}}
      window: month
    goal: 99.9%
  - id: email-p1-response
    clock:
      applies_to: {type: incident.opened, where: {priority: P1}}
      stop: incident.acknowledged
    goal: 15m
credits:
  of: availability
  tiers:
    - {below: 99.9%, credit: 10%}
    - {below: 99.5%, credit: 25%}
    - {below: 99%, credit: 50%}
---
kind: Agreement
id: ola-email
type: OLA
service: email
customer: Platform team
targets:
  - id: ola-p1-response
    clock:
      applies_to: {type: incident.opened, where: {priority: P1}}
      stop: incident.acknowledged
    goal: 10m
credits:
  of: compliance
  tiers:
    - {below: 95%, credit: 5%}
    - {below: 60%, credit: 15%}
"""


@pytest.fixture
def reports(url, wall, tmp_path):
    """The running service with CREDIT_RULES; ``post`` sends facts as a monitor, ``get``
    reads as an auditor."""
    store = Store.open(url)
    rules = small_rules(tmp_path / "rules", CREDIT_RULES)
    service = SlmService(store, rules, now=wall, snapshot_every=0)
    service.start(background=False)
    tokens = {role: store.add_token(role, name=f"{role}-token") for role in ("monitor", "auditor", "owner")}
    tokens["second-owner"] = store.add_token("owner", name="second-owner")
    client = create_app(service).test_client()

    def post(facts):
        response = client.post("/v1/facts", json=facts, headers={"Authorization": f"Bearer {tokens['monitor']}"})
        assert response.status_code == 200, response.json
        return response

    def get(path, **query):
        return client.get(path, query_string=query, headers={"Authorization": f"Bearer {tokens['auditor']}"})

    def as_(token, path, body=None):
        """POST ``body`` to ``path`` with the token ``tokens[token]``."""
        return client.post(path, json=body, headers={"Authorization": f"Bearer {tokens[token]}"})

    env = type("Reports", (), {"service": service, "store": store, "client": client, "wall": wall, "url": url,
                               "rules": rules, "tokens": tokens, "post": staticmethod(post),
                               "get": staticmethod(get), "as_": staticmethod(as_)})
    yield env
    service.stop()
    store.close()


def outage(n: int, start: str, end: str) -> list[dict]:
    return [fact(f"down-{n}", type="alert.firing", time=start, subject=f"fp-{n}", source="alertmanager",
                 alertname="EmailDown"),
            fact(f"up-{n}", type="alert.resolved", time=end, subject=f"fp-{n}", source="alertmanager",
                 alertname="EmailDown")]


def tickets() -> list[dict]:
    """INC-A acknowledged in 5 minutes (met by both), INC-B in 12 (met by the SLA's 15m,
    breached by the OLA's 10m): the OLA's compliance is 50 %."""
    return [fact("a", subject="INC-A", time="2026-11-03T09:00:00Z", priority="P1"),
            fact("a-ack", type="incident.acknowledged", subject="INC-A", time="2026-11-03T09:05:00Z"),
            fact("b", subject="INC-B", time="2026-11-03T09:00:00Z", priority="P1"),
            fact("b-ack", type="incident.acknowledged", subject="INC-B", time="2026-11-03T09:12:00Z")]
