"""The API's fixture: the real service behind Flask's test client, on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest

from api.app import create_app
from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import PORTFOLIO


@pytest.fixture
def env(url, wall):
    store = Store.open(url)
    service = SlmService(store, PORTFOLIO, now=wall)
    service.start(background=False)
    app = create_app(service)
    tokens = {role: store.add_token(role) for role in ("monitor", "owner", "auditor", "admin")}
    client = app.test_client()
    wall.set("2026-11-05T04:00:00Z")
    yield type("Env", (), {"client": client, "service": service, "store": store, "wall": wall,
                           "tokens": tokens, "url": url})
    service.stop()
    store.close()
