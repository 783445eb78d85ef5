"""Reports count an ongoing outage up to the wall clock, as ``/v1/clocks`` does.

Before, the availability of a window was read at the engine's event time, which only
moves when a fact or a deadline arrives: an hour into the first outage of the month the
report still said 100 % while ``/v1/clocks`` showed the hour counted.
"""
from __future__ import annotations

import pytest

from api.app import create_app
from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import PORTFOLIO, fact


@pytest.fixture
def env(url, wall):
    store = Store.open(url)
    service = SlmService(store, PORTFOLIO, now=wall)
    service.start(background=False)
    client = create_app(service).test_client()
    headers = {"Authorization": f"Bearer {store.add_token('admin')}"}
    yield service, client, headers, wall
    service.stop()
    store.close()


def test_the_report_counts_an_ongoing_outage_up_to_now(env):
    service, client, headers, wall = env
    wall.set("2026-11-05T03:00:00Z")
    down = fact("a1", type="alert.firing", time="2026-11-05T03:00:00Z", subject="fp-1",
                source="alertmanager", alertname="EmailDown")
    assert client.post("/v1/facts", json=down, headers=headers).status_code == 200
    wall.set("2026-11-05T04:00:00Z")         # an hour later, nothing else has arrived
    service.deadlines.tick()                 # the scheduler fires the warnings (50 %, 75 %) and breach

    clocks = client.get("/v1/clocks?target=email-availability", headers=headers).json["items"]
    assert [c["counted"] for c in clocks] == ["1h"]
    report = client.get("/v1/reports/compliance?service=email&period=2026-11", headers=headers).json
    row = next(r for r in report["targets"] if r["target"] == "email-availability")
    assert row["availability"] == pytest.approx(100 * (1 - 1 / (30 * 24)), abs=1e-4)    # 99.8611 %

    wall.set("2026-11-05T05:00:00Z")         # and it keeps moving with the wall clock
    service.deadlines.tick()
    report = client.get("/v1/reports/compliance?service=email&period=2026-11", headers=headers).json
    row = next(r for r in report["targets"] if r["target"] == "email-availability")
    assert row["availability"] == pytest.approx(100 * (1 - 2 / (30 * 24)), abs=1e-4)


def test_metrics_per_target_have_no_subject_label(env):
    service, client, headers, wall = env
    wall.set("2026-11-05T04:00:00Z")
    down = fact("a1", type="alert.firing", time="2026-11-05T03:00:00Z", subject="fp-1",
                source="alertmanager", alertname="EmailDown")
    client.post("/v1/facts", json=[down, fact("i1", time="2026-11-05T03:00:00Z", subject="INC-9", priority="P1")],
                headers=headers)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'slm_target_breaches_total{service="email",target="email-p1-response"} 1.0' in text
    assert 'slm_target_compliance_ratio{service="email",target="email-p1-response"} 0.0' in text
    budget = [line for line in text.splitlines()
              if line.startswith('slm_target_availability_budget_remaining_ratio'
                                 '{service="email",target="email-availability"}')]
    assert len(budget) == 1 and float(budget[0].split()[-1]) < 0          # 1 h down of a 43m12s budget
    assert "INC-9" not in text and "fp-1" not in text
