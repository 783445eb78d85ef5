"""``GET /v1/rules`` and rule checks name files relative to the rules directory, never by
the server's absolute paths (issue 20, item 15)."""
from __future__ import annotations

import json
import shutil

from api.app import create_app
from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import PORTFOLIO, WallClock


def test_rules_are_named_relative_to_the_rules_directory(tmp_path):
    rules = tmp_path / "secret-server-dir" / "rules"
    shutil.copytree(PORTFOLIO, rules)
    expired = rules / "zz-expired.yaml"
    expired.write_text("kind: Agreement\nid: old-sla\ntype: SLA\nservice: email\n"
                       "valid: {from: 2019-01-01, to: 2019-12-31}\ntargets:\n"
                       "  - id: old-p1\n    clock:\n      applies_to: {type: incident.opened}\n"
                       "      stop: incident.acknowledged\n    goal: 15m\n")
    store = Store.open(f"sqlite:///{tmp_path / 'slm.db'}")
    service = SlmService(store, rules, now=WallClock("2026-11-05T04:00:00Z"))
    service.start(background=False)
    try:
        client = create_app(service).test_client()
        token = store.add_token("auditor")
        answer = client.get("/v1/rules", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200
        text = json.dumps(answer.json)
        assert answer.json["warnings"], answer.json                    # old-p1 notifies nobody
        assert str(tmp_path) not in text and "secret-server-dir" not in text, text
        assert any(w.startswith("zz-expired.yaml:") for w in answer.json["warnings"]), answer.json["warnings"]
        assert "zz-expired.yaml" in answer.json["files"]
        expired.write_text("kind: Calendar\nid: [bad\n")              # a reload refused: named relative too
        owner = store.add_token("owner")
        refused = client.post("/v1/rules/reload", headers={"Authorization": f"Bearer {owner}"})
        assert refused.status_code == 422 and str(tmp_path) not in json.dumps(refused.json), refused.json
        assert refused.json["problems"][0]["file"] == "zz-expired.yaml"
    finally:
        service.stop()
        store.close()
