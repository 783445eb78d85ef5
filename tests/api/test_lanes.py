"""The probes' lane (cli/lanes.py): /healthz, /readyz and /metrics have threads of their
own, so a probe is answered while every API thread waits for the write lock. Real
waitress, real service, real HTTP; the test holds the write lock as a long write would."""
from __future__ import annotations

import threading

import requests

from api.app import create_app
from cli.lanes import LaneDispatcher, create_server
from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import fact, small_rules


def test_a_probe_is_answered_while_every_api_thread_waits_for_the_write_lock(tmp_path, wall):
    store = Store.open(f"sqlite:///{tmp_path / 'slm.db'}")
    rules = small_rules(tmp_path / "rules")
    service = SlmService(store, rules, now=wall)
    service.start(background=False)
    wall.set("2026-11-02T09:05:00Z")
    service.facts.ingest([fact("i1", priority="P1")])
    token = store.add_token("admin", name="lanes")
    headers = {"Authorization": f"Bearer {token}"}
    threads = 2
    server = create_server(create_app(service), host="127.0.0.1", port=0, threads=threads)
    assert isinstance(server.task_dispatcher, LaneDispatcher)     # waitress took it
    base = f"http://127.0.0.1:{server.effective_port}"
    serving = threading.Thread(target=server.run, daemon=True)
    serving.start()
    posted: list[int] = []

    def post(n: int) -> None:
        answer = requests.post(base + "/v1/facts", json=fact(f"p{n}", subject=f"INC-P{n}", priority="P2",
                                                             time="2026-11-02T09:04:00Z"),
                               headers=headers, timeout=120)
        posted.append(answer.status_code)

    try:
        with service.state.write_lock:                    # as a long write would hold it
            posters = [threading.Thread(target=post, args=(n,)) for n in range(threads * 3)]
            for poster in posters:
                poster.start()
            # every API thread now waits for the lock, and more posts queue behind them;
            # the probes are still answered while the lock is held
            health = requests.get(base + "/healthz", timeout=60)
            metrics = requests.get(base + "/metrics", timeout=60)
            assert posted == []                           # no post got through: the lock is held
        for poster in posters:
            poster.join(timeout=120)
        assert health.status_code == 200 and metrics.status_code == 200
        assert "slm_" in metrics.text
        assert posted == [200] * (threads * 3)            # and once it is released, every post is taken
    finally:
        server.close()
        service.stop()
        store.close()
