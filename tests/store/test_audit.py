"""The audit chains (issue 11, part 2): decisions, facts and notifications chained with
HMAC-SHA-256 under a key kept outside the database. Someone who can write the database
but has no key cannot rewrite, remove or cut off records unseen; a checkpoint proves that
nothing up to it was removed, even when the whole log was truncated.
"""
from __future__ import annotations

import json
import os
import stat

import pytest
from click.testing import CliRunner

from cli import main
from engine.service.live import SlmService
from engine.store.audit import body_text, fact_text
from engine.store.chain import GENESIS, AuditKeyError, Head, chain_hash, load_key
from engine.store.encoding import canonical_json
from engine.store.store import Store
from tests.support import small_rules, utc

ALL_CHAINS = {"decisions", "facts", "notifications", "deliveries", "cutovers", "silences", "waivers",
              "restatements"}


@pytest.fixture
def key_file(tmp_path):
    return tmp_path / "keys" / "audit.key"


@pytest.fixture
def keyed(url, key_file):
    store = Store.open(url, audit_key=load_key(key_file, create=True))
    yield store
    store.close()


def decision(id, **extra):
    return {"id": id, "kind": "breach", "target": "t", "subject": "INC-1", "service": "email",
            "at": "2026-11-02T09:00:00Z", **extra}


def fill(store, n=6):
    for i in range(1, n + 1):
        store.add_facts([({"id": f"f{i}", "source": "s", "type": "incident.opened", "time": "2026-11-02T09:00:00Z",
                           "subject": "INC-1", "service": "email"}, [f"dec_{i}"])])
        store.add_decisions([decision(f"dec_{i}")])
        store.add_notifications([{"id": f"n{i}", "decision": f"dec_{i}", "recipient": "ops", "status": "pending"}])


def sql(store, text, *params):
    return store.db.execute_sql(text.replace("?", store.db.param), params)


def test_the_key_file_is_made_owner_only_and_a_shared_one_is_refused(key_file):
    key = load_key(key_file, create=True)
    assert len(key) == 32 and stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert load_key(key_file) == key                      # made once, read after
    os.chmod(key_file, 0o644)
    with pytest.raises(AuditKeyError, match="chmod 600"):
        load_key(key_file)


def test_every_chain_verifies_with_count_first_last_and_head(keyed):
    fill(keyed)
    result = keyed.verify_audit()
    assert result["ok"], result
    for name in ("decisions", "facts", "notifications"):
        chain = result["chains"][name]
        assert (chain["checked"], chain["count"], chain["first_seq"], chain["last_seq"]) == (6, 6, 1, 6), name
        assert chain["keyed_from"] == 1 and chain["macs_checked"]


def test_a_rehashed_edit_is_found_without_the_key(keyed):
    """Edit a decision and recompute every link after it, as anyone can with SHA-256."""
    fill(keyed)
    rows = sql(keyed, "SELECT seq, prev_hash, body FROM decisions ORDER BY seq").fetchall()
    prev = rows[1][1]
    for seq, _, body in rows[1:]:
        if seq == 2:
            body = canonical_json(decision("dec_2", kind="met"))
        link = chain_hash(prev, body)
        sql(keyed, "UPDATE decisions SET body = ?, kind = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            body, json.loads(body)["kind"], prev, link, seq)
        prev = link
    sql(keyed, "UPDATE chain_head SET hash = ? WHERE name = 'decisions'", prev)
    chain = keyed.verify_audit()["chains"]["decisions"]
    assert not chain["ok"] and chain["first_broken"]["seq"] == 2 and chain["first_broken"]["id"] == "dec_2"


def test_rows_cut_off_the_end_with_the_head_moved_are_found(keyed):
    fill(keyed)
    last = sql(keyed, "SELECT hash, id FROM decisions WHERE seq = 4").fetchone()
    sql(keyed, "DELETE FROM notifications WHERE decision IN ('dec_5', 'dec_6')")
    sql(keyed, "DELETE FROM decisions WHERE seq > 4")
    sql(keyed, "UPDATE chain_head SET seq = 4, count = 4, hash = ?, last_id = ? WHERE name = 'decisions'", *last)
    chain = keyed.verify_audit()["chains"]["decisions"]
    assert not chain["ok"] and "seal" in chain["first_broken"]["reason"]


def test_facts_and_notifications_are_chained_too(keyed):
    fill(keyed)
    sql(keyed, "UPDATE facts SET body = replace(body, 'INC-1', 'INC-9'), subject = 'INC-9' WHERE id = 'f3'")
    sql(keyed, "UPDATE notifications SET body = replace(body, 'ops', 'nobody'), recipient = 'nobody' WHERE id = 'n5'")
    result = keyed.verify_audit()
    assert not result["ok"]
    assert result["chains"]["facts"]["first_broken"]["id"] == "f3"
    assert result["chains"]["notifications"]["first_broken"]["id"] == "n5"
    assert result["chains"]["decisions"]["ok"]


def test_a_record_inserted_after_the_head_is_found(keyed):
    fill(keyed, 2)
    sql(keyed, "INSERT INTO decisions (seq, id, kind, at, body, prev_hash, hash, partition) "
               "VALUES (3, 'dec_x', 'met', '2026-11-02T09:00:00.000000Z', '{}', ?, ?, 'default')", GENESIS, GENESIS)
    chain = keyed.verify_audit()["chains"]["decisions"]
    assert not chain["ok"] and "after the chain head" in chain["first_broken"]["reason"]


def test_a_checkpoint_proves_nothing_up_to_it_was_removed_truncation_included(keyed):
    fill(keyed)
    point = keyed.audit_checkpoint()
    assert set(point["chains"]) == ALL_CHAINS and point["mac"]
    fill_more = [decision("dec_7")]
    keyed.add_decisions(fill_more)
    assert keyed.verify_audit(point)["ok"]                # the log grew: still upheld
    # truncate everything and reset the heads as a fresh database has them (unkeyed seals
    # anyone can compute): without the checkpoint this looks like a young database ...
    sql(keyed, "DELETE FROM notifications")
    sql(keyed, "DELETE FROM decisions")
    from engine.store.chain import Head
    head = Head("decisions", 0, 0, GENESIS, None, 1, None, None)
    head.seal(None)
    sql(keyed, "UPDATE chain_head SET seq = 0, count = 0, hash = ?, last_id = NULL, keyed_from = NULL, mac = ? "
               "WHERE name = 'decisions'", GENESIS, head.mac)
    assert keyed.verify_audit()["chains"]["decisions"]["ok"]
    # ... and the checkpoint says what is gone
    result = keyed.verify_audit(point)
    assert not result["ok"] and not result["checkpoint"]["ok"]
    assert "cut back" in result["chains"]["decisions"]["first_broken"]["reason"]


def test_a_forged_checkpoint_is_refused(keyed):
    fill(keyed, 2)
    point = keyed.audit_checkpoint()
    point["chains"]["decisions"]["seq"] = 1
    result = keyed.verify_audit(point)
    assert not result["ok"] and "signature" in result["checkpoint"]["problem"]


def test_cli_checkpoint_and_verify_against_it(url, key_file, tmp_path):
    store = Store.open(url, audit_key=load_key(key_file, create=True))
    fill(store, 3)
    store.close()
    runner = CliRunner()
    made = runner.invoke(main, ["audit", "checkpoint", "--db", url, "--audit-key-file", str(key_file)])
    assert made.exit_code == 0, made.output
    saved = tmp_path / "checkpoint.json"
    saved.write_text(made.output)
    ok = runner.invoke(main, ["audit", "verify", "--db", url, "--audit-key-file", str(key_file),
                                  "--checkpoint", str(saved)])
    assert ok.exit_code == 0 and "OK: 3 facts, seq 1..3" in ok.output, ok.output
    store = Store.open(url, audit_key=load_key(key_file))
    sql(store, "DELETE FROM notifications WHERE id = 'n3'")
    store.close()
    broken = runner.invoke(main, ["audit", "verify", "--db", url, "--audit-key-file", str(key_file),
                                      "--checkpoint", str(saved)])
    assert broken.exit_code == 1 and "BROKEN at notification seq" in broken.output, broken.output


def test_the_api_returns_a_signed_checkpoint_and_every_chain(url, key_file, wall, tmp_path):
    from api.app import create_app
    store = Store.open(url, audit_key=load_key(key_file, create=True))
    rules = small_rules(tmp_path / "rules")
    service = SlmService(store, rules, now=wall)
    service.start(background=False)
    try:
        token = store.add_token("auditor")
        client = create_app(service).test_client()
        headers = {"Authorization": f"Bearer {token}"}
        point = client.get("/v1/audit/checkpoint", headers=headers)
        assert point.status_code == 200 and point.json["mac"] and "decisions" in point.json["chains"]
        assert store.verify_audit(point.json)["checkpoint"]["ok"]
        verified = client.get("/v1/audit/verify", headers=headers)
        assert (verified.status_code == 200
                and set(verified.json["chains"]) == ALL_CHAINS)
    finally:
        service.stop()
        store.close()


# ---- delivery outcomes: the deliveries chain ---------------------------------------------

def outcome_events(store, nid):
    return [o["event"] for o in store.delivery_outcomes(nid)]


def test_every_delivery_outcome_is_chained_and_verifies(keyed):
    fill(keyed, 3)
    keyed.record_failure(["n1"], "failed", "550 no such user", None, "msg-1")
    keyed.requeue("n1")
    keyed.record_sent(["n1"], "msg-2")
    keyed.record_failure(["n2"], "retrying", "timeout", utc("2026-11-02T09:05:00Z"), "msg-3")
    keyed.cancel_for(["dec_2"])
    keyed.release(["n3"])                                # no attempt: no outcome
    assert outcome_events(keyed, "n1") == ["created", "failed", "requeued", "sent"]
    assert outcome_events(keyed, "n2") == ["created", "retrying", "cancelled"]
    assert outcome_events(keyed, "n3") == ["created"]
    last = keyed.delivery_outcomes("n1")[-1]
    assert (last["status"], last["attempts"], last["message_id"], last["last_error"]) == ("sent", 2, "msg-2", None)
    result = keyed.verify_audit()
    assert result["ok"], result
    chain = result["chains"]["deliveries"]
    assert (chain["checked"], chain["count"], chain["first_seq"], chain["last_seq"]) == (8, 8, 1, 8)
    assert chain["keyed_from"] == 1 and chain["macs_checked"]


def test_a_failed_notification_turned_sent_in_the_database_is_named(keyed):
    fill(keyed, 3)
    keyed.record_failure(["n2"], "failed", "550 no such user", None, "msg-1")
    assert keyed.verify_audit()["ok"]
    sql(keyed, "UPDATE notifications SET status = 'sent', last_error = NULL WHERE id = 'n2'")
    result = keyed.verify_audit()
    assert not result["ok"]
    broken = result["chains"]["deliveries"]["first_broken"]
    assert broken["id"] == "n2" and broken["seq"] == 4
    assert "status is 'sent'" in broken["reason"] and "says 'failed'" in broken["reason"]
    assert all(result["chains"][name]["ok"] for name in ("decisions", "facts", "notifications"))


def test_a_rewritten_outcome_is_found_without_the_key(keyed):
    """Turn the chained outcome into `sent` too, its link recomputed as SHA-256."""
    fill(keyed, 2)
    keyed.record_failure(["n1"], "failed", "550", None, "msg-1")
    seq, prev, body = sql(keyed, "SELECT seq, prev_hash, body FROM deliveries WHERE event = 'failed'").fetchone()
    forged = canonical_json({**json.loads(body), "status": "sent", "last_error": None})
    sql(keyed, "UPDATE deliveries SET body = ?, status = 'sent', hash = ? WHERE seq = ?",
        forged, chain_hash(prev, forged), seq)
    sql(keyed, "UPDATE notifications SET status = 'sent', last_error = NULL WHERE id = 'n1'")
    broken = keyed.verify_audit()["chains"]["deliveries"]["first_broken"]
    assert broken["seq"] == seq and broken["id"] == "n1" and "hash does not match" in broken["reason"]


def test_outcomes_cut_off_the_end_are_found_and_the_checkpoint_pins_them(keyed, url, key_file, tmp_path):
    fill(keyed, 2)
    keyed.record_failure(["n1"], "failed", "550", None, None)
    point = keyed.audit_checkpoint()
    assert point["chains"]["deliveries"]["count"] == 3
    # a DBA deletes the `failed` outcome and its notification's trace, head left alone
    sql(keyed, "DELETE FROM deliveries WHERE event = 'failed'")
    sql(keyed, "UPDATE notifications SET status = 'pending', last_error = NULL, attempts = 0 WHERE id = 'n1'")
    chain = keyed.verify_audit()["chains"]["deliveries"]
    assert not chain["ok"] and "missing from the end" in chain["first_broken"]["reason"]
    saved = tmp_path / "checkpoint.json"
    saved.write_text(json.dumps(point))
    keyed.close()
    out = CliRunner().invoke(main, ["audit", "verify", "--db", url, "--audit-key-file", str(key_file),
                                    "--checkpoint", str(saved)])
    assert out.exit_code == 1 and "BROKEN at delivery outcome seq" in out.output, out.output


# ---- rows outside every chain, downgraded chains, rule sets (issue: the chain can be got round) ----

def test_rows_outside_every_chain_are_named_and_never_served(keyed, url, key_file, tmp_path):
    """A forged fact at seq -1 and a forged decision at seq 0 sit before their chains'
    start: verify names each one (with a checkpoint too), and reads do not serve them."""
    fill(keyed, 3)
    point = keyed.audit_checkpoint()
    sql(keyed, "INSERT INTO facts (seq, source, id, type, time, body, received_at, outcome) VALUES "
               "(-1, 'evil/x', 'f1', 'incident.opened', '2026-11-02T09:00:00.000000Z', ?, "
               "'2026-11-02T09:00:00.000000Z', '[]')",
        json.dumps({"id": "f1", "source": "evil/x", "type": "incident.opened", "time": "2026-11-02T09:00:00Z"}))
    sql(keyed, "INSERT INTO decisions (seq, id, kind, at, body, prev_hash, hash) VALUES "
               "(0, 'dec_forged', 'breach', '2026-11-02T09:00:00.000000Z', ?, ?, ?)",
        json.dumps({"id": "dec_forged", "kind": "breach", "at": "2026-11-02T09:00:00Z", "because": ["fact:f1"]}),
        GENESIS, GENESIS)
    sql(keyed, "INSERT INTO notifications (seq, id, decision, recipient, status, body, created_at) VALUES "
               "(-5, 'n_forged', 'dec_1', 'x', 'sent', '{}', '2026-11-02T09:00:00.000000Z')")
    result = keyed.verify_audit(point)
    assert not result["ok"]
    chains = result["chains"]
    assert chains["facts"]["outside"] == [{"seq": -1, "id": "f1"}] and chains["facts"]["outside_count"] == 1
    assert chains["decisions"]["outside"] == [{"seq": 0, "id": "dec_forged"}]
    assert chains["notifications"]["outside"] == [{"seq": -5, "id": "n_forged"}]
    for name in ("facts", "decisions", "notifications"):
        assert not chains[name]["ok"] and "not links of the chain" in chains[name]["first_broken"]["reason"]
    assert chains["deliveries"]["outside"] == [] and chains["cutovers"]["outside"] == []
    assert keyed.decision("dec_forged") is None and "dec_forged" not in keyed.decisions_by_id(["dec_forged"])
    assert "dec_forged" not in [d["id"] for d in keyed.list_decisions()[0]]
    assert keyed.fact("evil/x", "f1") is None and keyed.fact_by_ref("f1")["source"] == "s"
    assert [s["fact"]["source"] for s in keyed.facts()] == ["s", "s", "s"]
    runner = CliRunner()
    saved = tmp_path / "checkpoint.json"
    saved.write_text(json.dumps(point))
    out = runner.invoke(main, ["audit", "verify", "--db", url, "--audit-key-file", str(key_file),
                               "--checkpoint", str(saved)])
    assert out.exit_code == 1
    assert "not a link of the facts chain: fact seq -1 (f1)" in out.output
    assert "not a link of the decisions chain: decision seq 0 (dec_forged)" in out.output


def test_a_keyed_chain_downgraded_to_plain_sha256_fails_verify_with_the_key(keyed):
    """Re-linking every record with plain SHA-256 and clearing keyed_from (resealing the
    head unkeyed) needs no key; verified with the key, it is refused."""
    fill(keyed, 3)
    for name, table in (("decisions", "decisions"), ("facts", "facts")):
        prev = GENESIS
        text = fact_text if name == "facts" else body_text
        for row in list(keyed._chained(name).select().order_by(keyed._chained(name).seq)):
            new = chain_hash(prev, text(row))
            sql(keyed, f"UPDATE {table} SET prev_hash = ?, hash = ? WHERE seq = ?", prev, new, row.seq)
            prev = new
        head = keyed._head(name)
        plain = Head(name, head.seq, head.count, prev, head.last_id, head.chained_from, None, None)
        plain.seal(None)
        sql(keyed, "UPDATE chain_head SET hash = ?, keyed_from = NULL, mac = ? WHERE name = ?", prev, plain.mac, name)
    keyed_result = keyed.verify_audit()
    for name in ("decisions", "facts"):
        chain = keyed_result["chains"][name]
        assert not chain["ok"] and "not keyed by the audit key" in chain["first_broken"]["reason"], chain
    assert keyed_result["chains"]["notifications"]["ok"]      # still keyed: untouched
    keyed.audit_key = None                                     # without the key it looks like a younger store
    assert keyed.verify_audit()["chains"]["decisions"]["ok"]


def test_an_old_rule_set_edited_in_the_database_is_named_and_not_served(keyed):
    from engine.lang.loader import version_of
    old_files = {"services/a.yaml": "kind: Service\nid: a\n"}
    new_files = {"services/a.yaml": "kind: Service\nid: a\nname: A\n"}
    old, new = version_of(old_files), version_of(new_files)
    keyed.save_ruleset(old, old_files)
    keyed.add_cutover(old, "2026-11-01T00:00:00Z", 0, 0, "slm serve")
    keyed.save_ruleset(new, new_files)
    keyed.add_cutover(new, "2026-11-02T00:00:00Z", 0, 0, "ops")
    assert [(c["ruleset"], c["by"]) for c in keyed.cutovers()] == [(old, "slm serve"), (new, "ops")]
    result = keyed.verify_audit()
    assert result["ok"] and result["chains"]["cutovers"]["checked"] == 2
    assert result["chains"]["cutovers"]["keyed_from"] == 1
    edited = json.dumps({"services/a.yaml": "kind: Service\nid: a\n# appended\n"})
    sql(keyed, "UPDATE rulesets SET files = ? WHERE hash = ?", edited, old)
    chain = keyed.verify_audit()["chains"]["cutovers"]
    assert not chain["ok"] and chain["first_broken"]["id"] == old
    assert "do not hash to its version" in chain["first_broken"]["reason"]
    assert keyed.ruleset_files(old) is None and keyed.ruleset_files(new) == new_files
    sql(keyed, "UPDATE rulesets SET files = ? WHERE hash = ?", json.dumps(old_files), old)
    assert keyed.verify_audit()["ok"]
    sql(keyed, "UPDATE cutovers SET by = 'someone else' WHERE ruleset = ?", new)    # who did it, rewritten
    chain = keyed.verify_audit()["chains"]["cutovers"]
    assert not chain["ok"] and chain["first_broken"]["id"] == new
