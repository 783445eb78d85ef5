"""A database whose disk is full answers writes 503 with ``Retry-After``, naming the cause,
stores nothing of them, and takes the same request once there is room again. SQLite's
``max_page_count`` makes the file full for real: SQLite answers SQLITE_FULL exactly as it
does on a full disk."""
from __future__ import annotations

from api.app import create_app
from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import PORTFOLIO, fact_count
from tests.support.api import PROBLEM, p1


def test_a_full_disk_is_503_naming_it_then_the_same_request_is_taken(tmp_path, wall):
    store = Store.open(f"sqlite:///{tmp_path / 'full.db'}")
    service = SlmService(store, PORTFOLIO, now=wall)
    service.start(background=False)
    client = create_app(service).test_client()
    headers = {"Authorization": f"Bearer {store.add_token('monitor')}"}
    wall.set("2026-11-05T04:00:00Z")
    try:
        assert client.post("/v1/facts", json=p1("a0"), headers=headers).status_code == 200
        pages = store.db.execute_sql("PRAGMA page_count").fetchone()[0]
        store.db.pragma("max_page_count", pages, permanent=True)      # every connection: no page more
        batch = [p1(f"a{n}", subject=f"INC-{n}", data={"priority": "P1", "note": "x" * 2000}) for n in range(1, 40)]
        refused = client.post("/v1/facts", json=batch, headers=headers)
        assert refused.status_code == 503 and refused.mimetype == PROBLEM, refused.json
        assert "full" in refused.json["detail"] and refused.headers["Retry-After"]
        store.db.pragma("max_page_count", 1 << 30, permanent=True)
        assert fact_count(store) == 1                                  # nothing of the refused request
        taken = client.post("/v1/facts", json=batch, headers=headers)
        assert taken.status_code == 200, taken.json
        assert fact_count(store) == 40 and store.verify_audit()["ok"]
    finally:
        service.stop()
        store.close()
