"""Server time to render the console's main pages with 10,000 decisions in a month.

The month is filled through the service (real evaluation, SQLite in a temporary file):
P1 incidents on the email service, each answered after 20 minutes, so its response clock
breaches with warnings and escalations on the way (about 10 decisions per incident).
Each page is rendered through Flask's test client (server time only: no network, no
browser). The baseline, measured in the same run, is the JSON API listing the same
decisions (``GET /v1/decisions?limit=1000`` pages until done) and the JSON report.

Run after ``make install``:  .venv/bin/python bench/console.py [--decisions 10000]
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.app import create_app
from engine.service.live import SlmService
from engine.store.store import Store


def fill(service, wall, decisions: int) -> None:
    start = datetime(2026, 11, 2, tzinfo=UTC)
    n = 0
    while service.store.decision_count() < decisions:
        batch = []
        for _ in range(100):
            opened = start + timedelta(minutes=7 * n)
            batch += [{"id": f"o{n}", "source": "bench", "type": "incident.opened", "time": opened.isoformat(),
                       "subject": f"INC-{n}", "service": "email", "data": {"priority": "P1"}},
                      {"id": f"a{n}", "source": "bench", "type": "incident.acknowledged",
                       "time": (opened + timedelta(minutes=20)).isoformat(), "subject": f"INC-{n}",
                       "service": "email", "data": {}}]
            n += 1
        wall.at = start + timedelta(minutes=7 * n + 30)
        service.facts.ingest(batch)
    wall.at = start + timedelta(minutes=7 * n + 30)
    service.deadlines.tick()


def timed(client, path: str, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        response = client.get(path)
        times.append(time.perf_counter() - began)
        assert response.status_code == 200, (path, response.status_code)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    class Wall:
        at = datetime(2026, 11, 2, tzinfo=UTC)

        def __call__(self):
            return self.at

    wall = Wall()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{tmp}/bench.db")
        service = SlmService(store, ROOT / "rules", now=wall)
        service.start(background=False)
        began = time.perf_counter()
        fill(service, wall, args.decisions)
        print(f"{store.decision_count()} decisions stored in {time.perf_counter() - began:.1f} s")
        app = create_app(service)
        token = store.add_token("admin")
        api = app.test_client()
        api.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        ui = app.test_client()
        form = ui.get("/ui/login").get_data(as_text=True)
        csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
        assert ui.post("/ui/login", data={"token": token, "csrf": csrf}).status_code == 302
        breach = store.list_decisions(kind="breach", target="email-p1-response", limit=1)[0][0]

        def all_pages():
            cursor, pages = None, 0
            while True:
                page = api.get("/v1/decisions?service=email&limit=1000" + (f"&cursor={cursor}" if cursor else "")).json
                pages += 1
                cursor = page["next"]
                if not cursor:
                    return pages

        began = time.perf_counter()
        for _ in range(args.rounds):
            all_pages()
        baseline = (time.perf_counter() - began) / args.rounds
        report = timed(api, "/v1/reports/compliance?service=email&period=2026-11", args.rounds)
        print(f"baseline: JSON API lists the month's decisions (all pages) {baseline * 1000:.0f} ms; "
              f"JSON compliance report {report * 1000:.0f} ms")
        pages = {"overview": "/ui/", "decisions (one page)": "/ui/decisions?service=email",
                 "trace": f"/ui/decisions/{breach['id']}",
                 "clock timeline": f"/ui/clocks/email-p1-response/{breach['subject']}",
                 "service review": "/ui/reports/email/2026-11", "rules": "/ui/rules"}
        print(f"{'page':24} {'median ms':>10} {'× baseline':>11}")
        for name, path in pages.items():
            seconds = timed(ui, path, args.rounds)
            print(f"{name:24} {seconds * 1000:10.1f} {seconds / baseline:11.2f}")
        service.stop()
        store.close()


if __name__ == "__main__":
    main()
