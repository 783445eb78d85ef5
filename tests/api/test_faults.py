"""Faults stay with their fact (issue 11, part 1): what the engine or the stores cannot
take is refused by the fact schema with 422 naming the field; malformed or oversized
bodies are 400 or 413 before they cost memory; what still fails inside the engine or the
store fails its own request, never a neighbour in the same group commit, and never twice.
"""
from __future__ import annotations

import io
import json
import tracemalloc

import durable_rules_engine
import pytest
from werkzeug.test import EnvironBuilder

from engine.eval.engine import Engine
from engine.lang.errors import FactError
from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import PORTFOLIO, ROOT, fact, fact_count
from tests.support.api import ALERTS, PROBLEM, auth, group, p1, post
from tests.support.engine_state import state_of


def post_raw(env, text: str | bytes, path="/v1/facts", content_type="application/json"):
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return env.client.post(path, data=data, content_type=content_type, headers=auth(env, "monitor"))


def p1_text(**replace) -> str:
    """A P1 fact as JSON text, with raw JSON fragments put in by field name."""
    text = json.dumps(p1())
    for name, raw in replace.items():
        text = text.replace('"priority": "P1"', f'"priority": "P1", "{name[5:]}": {raw}', 1) \
            if name.startswith("data_") else text.replace(f'"{name}": "{p1()[name]}"', f'"{name}": {raw}', 1)
    return text


def nested(depth: int):
    value = 1
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize("data, field", [
    ({f"k{n}": n for n in range(300)}, "data._object"),                        # durable_rules: ~245 properties
    ({f"g{g}": {f"k{n}": n for n in range(60)} for g in range(5)}, "data._object"),   # nested ones count too
    ({"deep": nested(500)}, "data.deep" + ".a" * 15),                           # durable_rules: ~250 levels
    ({"text": "x" * (30 * 1024 * 1024 // 100)}, "data.text"),                  # a 300 kB string
    ({"labels": {"host\u0000": "a"}}, "data.labels.host\u0000"),
], ids=["keys-300", "nested-keys-300", "depth-500", "string-300k", "nul-in-key"])
def test_engine_limits_are_part_of_the_fact_schema(env, data, field):
    response = post(env, p1(**data))
    assert response.status_code == 422 and response.mimetype == PROBLEM, response.json
    assert field in response.json["errors"], response.json["errors"]
    assert fact_count(env.store) == 0
    assert not env.service.state.engine_ahead            # nothing reached the engine
    assert post(env, p1("f2")).status_code == 200


@pytest.mark.parametrize("raw, field", [
    (dict(data_value="NaN"), "data.value"),
    (dict(data_value="Infinity"), "data.value"),
    (dict(data_value="-Infinity"), "data.value"),
    (dict(data_value="1e400"), "data.value"),
    (dict(data_value='[1, {"x": -1e999}]'), "data.value[1].x"),
    (dict(subject='"INC-\\ud800"'), "subject"),
    (dict(subject='"\\udc00"'), "subject"),
    (dict(id='"f\\u0000"'), "id"),
    (dict(data_note='"a\\u0000b"'), "data.note"),
])
def test_non_finite_numbers_lone_surrogates_and_nul_are_refused_naming_the_field(env, raw, field):
    response = post_raw(env, p1_text(**raw))
    assert response.status_code == 422 and response.mimetype == PROBLEM, response.data
    assert field in response.json["errors"], response.json["errors"]
    assert fact_count(env.store) == 0
    listed = env.client.get("/v1/facts", headers=auth(env, "auditor"))
    json.loads(listed.data)                              # still strict JSON (no NaN)
    assert post(env, p1("f2")).status_code == 200


def test_an_alertmanager_alert_with_300_labels_is_refused_by_the_schema(env):
    payload = json.loads((ALERTS / "email-down-firing.json").read_text())
    payload["alerts"][0]["labels"].update({f"l{n}": "x" for n in range(300)})
    response = post(env, payload, path="/v1/ingest/alertmanager")
    assert response.status_code == 200 and response.json["accepted"] == 0, response.json   # Alertmanager: no 4xx
    assert "310 properties" in response.json["rejected"][0]["errors"]["labels"][0]
    assert not env.service.state.engine_ahead


@pytest.mark.parametrize("body", [
    "[" * 5000,                                          # malformed, deeper than the parser recurses
    '{"a":' * 3000 + "1" + "}" * 2999,                   # one brace short, 3000 levels down
    json.dumps(p1()).replace('"P1"', '"P1", "x": ' + "[" * 3000 + "]" * 3000),   # valid, too deep to parse
    '{"id": "f1", "data": {"a": [1, 2,, 3]}}',           # malformed inside
    b'{"id": "\xff\xfe"}',                               # not UTF-8
], ids=["open-5000", "short-3000", "valid-3000", "inner-comma", "not-utf8"])
@pytest.mark.parametrize("path", ["/v1/facts", "/v1/ingest/alertmanager"])
def test_malformed_json_at_any_depth_is_400(env, body, path):
    response = post_raw(env, body, path=path)
    assert response.status_code == 400 and response.mimetype == PROBLEM, response.data[:300]
    assert fact_count(env.store) == 0


def test_a_body_is_bounded_in_bytes_and_in_values_before_it_is_parsed(env):
    too_long = post_raw(env, b"[" + b"{}," * (6 * 1024 * 1024) + b"{}]")      # 18 MiB
    assert too_long.status_code == 413 and too_long.mimetype == PROBLEM
    tracemalloc.start()
    try:
        many = post_raw(env, b"[" + b"{}," * (4 * 1024 * 1024) + b"{}]")         # 12 MiB, 4M objects
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert many.status_code == 413 and "JSON values" in many.json["detail"]
    assert peak < 64 * 1024 * 1024, peak        # parsed, it would be ~400 MB of dicts
    builder = EnvironBuilder(path="/v1/facts", method="POST", content_type="application/json",
                             headers=auth(env, "monitor"))
    environ = builder.get_environ()
    environ.pop("CONTENT_LENGTH", None)                  # as waitress passes a chunked upload
    environ.update({"wsgi.input": io.BytesIO(b"[" + b"1," * (9 * 1024 * 1024) + b"1]"),
                    "wsgi.input_terminated": True})
    chunked = env.client.open(environ)
    assert chunked.status_code == 413                    # no Content-Length: counted while read
    assert fact_count(env.store) == 0


# ---- what still fails inside fails alone ----------------------------------------------

@pytest.fixture
def poison(monkeypatch):
    """Facts whose id starts with "poison" fail inside the engine; the count of calls."""
    apply = Engine.apply_loaded
    calls = []

    def failing(self, fact, *args, **kwargs):
        if str(fact["id"]).startswith("poison"):
            calls.append(fact["id"])
            raise RuntimeError("forced failure")
        return apply(self, fact, *args, **kwargs)

    monkeypatch.setattr(Engine, "apply_loaded", failing)
    return calls


def test_a_fact_failing_in_the_engine_fails_its_request_alone_and_only_once(env, poison, monkeypatch):
    rebuilds = []
    restore = type(env.service.keeper).restore
    monkeypatch.setattr(type(env.service.keeper), "restore", lambda self: (rebuilds.append(1), restore(self)))
    good, bad, other = group(env, [p1("g1"), [p1("g2", subject="INC-2"), p1("poison-1", subject="INC-3")],
                                   p1("g3", subject="INC-4")])
    assert good.status_code == 200 and other.status_code == 200, (good.json, other.json)
    assert bad.status_code == 422 and "[1]._fact" in bad.json["errors"]
    stored = {row["fact"]["id"] for row in env.store.list_facts(limit=100)[0]}
    assert stored == {"g1", "g3"}
    assert rebuilds == [] and env.service.state.undone == 1     # the group's write undone, not rebuilt
    again = post(env, p1("poison-1", subject="INC-3"))   # a client retrying: refused on sight
    assert again.status_code == 422 and rebuilds == [] and poison == ["poison-1"]
    assert post(env, p1("g4", subject="INC-5")).status_code == 200 and rebuilds == []


def test_a_request_the_store_refuses_fails_alone(env, monkeypatch):
    add_facts = type(env.store).add_facts

    def refusing(self, rows, *args, **kwargs):
        if any(body["id"] == "refused" for body, _ in rows):
            raise ValueError("the store refuses this one")
        return add_facts(self, rows, *args, **kwargs)

    monkeypatch.setattr(type(env.store), "add_facts", refusing)
    first, refused, last = group(env, [p1("a1"), p1("refused", subject="INC-2"), p1("a3", subject="INC-3")])
    assert first.status_code == 200 and last.status_code == 200
    assert refused.status_code == 500
    assert {row["fact"]["id"] for row in env.store.list_facts(limit=100)[0]} == {"a1", "a3"}
    assert post(env, p1("a4", subject="INC-4")).status_code == 200


def test_the_service_answers_a_failed_fact_as_a_fact_error(env, poison):
    with pytest.raises(FactError) as refused:
        env.service.facts.ingest([fact("poison-x", time="2026-11-05T03:00:00Z", priority="P1")])
    assert "_fact" in refused.value.details



CHOKES = "a value durable_rules chokes on"


@pytest.fixture
def choking(monkeypatch):
    """durable_rules refuses every fact whose text holds :data:`CHOKES`, as it refuses a
    number it cannot read (error code 203): a value the fact schema lets through and the
    engine cannot take. durable_rules is the only stand-in; the service is all real."""
    real = durable_rules_engine.assert_fact

    def assert_fact(handle, text):
        if CHOKES in text:
            raise durable_rules_engine.error("Could not assert fact, error code: 203")
        return real(handle, text)

    monkeypatch.setattr(durable_rules_engine, "assert_fact", assert_fact)


def test_a_fact_that_fails_in_the_engine_is_undone_never_rebuilt(env, choking, tmp_path):
    """The failing fact's time first fires INC-1's 04:13 response breach inside the engine;
    then durable_rules refuses the fact. The request gets 422 naming the failure, the
    engine is put back as it was (no breach, nothing held), nobody sees 503, and the next
    good fact is decided exactly as by a service that never saw the bad one."""
    opened, good = p1("f1", time="2026-11-05T03:58:00Z"), p1("f2", subject="INC-2", time="2026-11-05T04:14:00Z")
    with Store.open(f"sqlite:///{tmp_path / 'twin.db'}") as twin_store:
        twin = SlmService(twin_store, PORTFOLIO, now=env.wall)
        twin.start(background=False)
        twin.facts.ingest([opened])
        env.wall.set("2026-11-05T04:10:00Z")
        twin.deadlines.tick()
        twin.facts.ingest([good])
        twin.stop()
        expected = {d["id"] for d in twin_store.list_decisions(limit=1000)[0]}

    def breached_at_04_13() -> bool:
        return any(d["at"] == "2026-11-05T04:13:00Z" for d in env.store.list_decisions(kind="breach", limit=100)[0])

    env.wall.set("2026-11-05T04:00:00Z")
    assert post(env, opened).status_code == 200
    env.wall.set("2026-11-05T04:10:00Z")
    service = env.service
    service.deadlines.tick()                # what is due by 04:10, stored before the bad fact comes
    engine, before = service.state.engine, state_of(service.state.engine)
    decided = env.store.decision_count()
    bad = post(env, p1("bad", subject="INC-2", time="2026-11-05T04:14:00Z", note=CHOKES))
    assert bad.status_code == 422 and bad.mimetype == PROBLEM
    assert "could not evaluate this fact" in bad.json["errors"]["_fact"][0]
    assert "error code: 203" in bad.json["errors"]["_fact"][0]
    with service.state.write_lock:
        assert service.state.engine is engine and state_of(engine) == before
    assert service.state.rebuilds == 0 and service.state.undone == 1
    assert service.state.ready.is_set() and not service.state.engine_ahead
    assert env.client.get("/readyz").status_code == 200
    assert env.store.decision_count() == decided and fact_count(env.store) == 1 and not breached_at_04_13()

    assert post(env, good).status_code == 200 and breached_at_04_13()
    assert {d["id"] for d in env.store.list_decisions(limit=1000)[0]} == expected
    assert service.state.rebuilds == 0
    metrics = env.client.get("/metrics").get_data(as_text=True)
    assert "slm_engine_writes_undone_total 1.0" in metrics and "slm_engine_rebuilds_total 0.0" in metrics


def test_a_failure_inside_durable_rules_memory_still_rebuilds(env, monkeypatch):
    """The one failure that cannot be undone: durable_rules failed inside its own memory
    (not refusing the fact's text), so what it holds is not known; the engine is rebuilt
    from the store before the next write, and that write is decided as usual."""
    real = durable_rules_engine.assert_fact

    def assert_fact(handle, text):
        if CHOKES in text:
            raise durable_rules_engine.error("Could not assert fact, error code: 304")
        return real(handle, text)

    monkeypatch.setattr(durable_rules_engine, "assert_fact", assert_fact)
    assert post(env, p1("bad", note=CHOKES)).status_code == 422
    assert env.service.state.engine_ahead and env.service.state.undone == 0
    assert post(env, p1("f2", subject="INC-2")).status_code == 200
    assert env.service.state.rebuilds == 1 and not env.service.state.engine_ahead


REPLACED_ENGINES = r"""
import gc, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from engine.eval.engine import Engine
from engine.lang.loader import load_rules

def rss_kb():
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmRSS:"))
    return int(line.split()[1])

rules = load_rules(sys.argv[2])
readings = []
for cycle in range(40):
    engine = Engine(rules)
    for n in range(20):
        engine.apply({"id": f"f{n}", "source": "t", "type": "incident.opened", "subject": f"INC-{n}",
                      "time": f"2026-11-02T09:{n:02d}:00Z", "service": "email", "data": {"priority": "P2"}})
    engine.close()
    del engine
    gc.collect()
    readings.append(rss_kb())
print(readings[-1] - readings[9])
"""


def test_a_replaced_engine_returns_the_facts_durable_rules_held(tmp_path):
    """Each rebuild replaces the engine; durable_rules keeps a ruleset's session state (the
    facts it held) past ``delete_ruleset``, ~1.2 MB per engine of 20 facts here, so 30
    replaced engines grew by ~36 MB before ``close`` also freed the session. In a process
    of its own, so that nothing else of the test run moves its memory."""
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-c", REPLACED_ENGINES, str(ROOT), str(PORTFOLIO)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    growth_kb = int(done.stdout.split()[-1])
    assert growth_kb < 12 * 1024, f"30 replaced engines kept {growth_kb / 1024:.0f} MB"


# ---- numbers, and a token refused again and again (issue 20, item 9) -------------------

@pytest.mark.parametrize("raw", ["5e-324", "1e-300", "1e308", "1e-7", "-1E16", "[1e20, {\"x\": 2.5e-8}]",
                                 str(2**63 - 1), str(-2**63)])
def test_every_finite_float_and_64_bit_integer_is_held_without_a_rebuild(env, raw, monkeypatch):
    rebuilds = []
    restore = type(env.service.keeper).restore
    monkeypatch.setattr(type(env.service.keeper), "restore", lambda self: (rebuilds.append(1), restore(self)))
    response = post_raw(env, p1_text(data_value=raw))
    assert response.status_code == 200, response.json
    assert response.json["decisions"], response.json          # the fact went through the rules
    stored = env.store.list_facts(limit=10)[0][0]["fact"]["data"]["value"]
    assert stored == json.loads(raw)
    assert post(env, p1("f2", subject="INC-2")).status_code == 200
    assert not rebuilds and not env.service.state.engine_ahead


@pytest.mark.parametrize("raw, field", [
    ("1" + "0" * 400, "data.value"),
    (str(2**63), "data.value"),
    (str(-2**63 - 1), "data.value"),
    ('{"a": [1, ' + str(10**30) + "]}", "data.value.a[1]"),
])
def test_an_integer_the_engine_cannot_hold_is_refused_naming_the_field(env, raw, field):
    response = post_raw(env, p1_text(data_value=raw))
    assert response.status_code == 422 and response.mimetype == PROBLEM, response.json
    assert "send it as a string" in response.json["errors"][field][0], response.json["errors"]
    assert fact_count(env.store) == 0 and not env.service.state.engine_ahead


def test_a_token_refused_many_times_in_a_row_is_slowed_with_429(env):
    refused = [post_raw(env, p1_text(id=f'"bad-{n}"', data_value=str(2**64))) for n in range(20)]
    assert {r.status_code for r in refused} == {422}
    slowed = post(env, p1("good-1"))
    assert slowed.status_code == 429 and slowed.mimetype == PROBLEM, slowed.json
    assert slowed.headers["Retry-After"] == "1"
    assert fact_count(env.store) == 0                        # not read at all
    other = env.store.add_token("monitor", name="other-monitor")
    assert env.client.post("/v1/facts", json=p1("good-2"), headers={"Authorization": f"Bearer {other}"}
                           ).status_code == 200               # another token is not slowed
    env.wall.forward(seconds=1)
    assert post_raw(env, p1_text(id='"bad-x"', data_value=str(2**64))).status_code == 422
    again = post(env, p1("good-3", subject="INC-3"))
    assert again.status_code == 429 and again.headers["Retry-After"] == "2"     # the wait doubles
    env.wall.forward(seconds=2)
    assert post(env, p1("good-3", subject="INC-3")).status_code == 200
    assert post_raw(env, p1_text(id='"bad-y"', data_value=str(2**64))).status_code == 422   # the count starts again
    assert post(env, p1("good-4", subject="INC-4")).status_code == 200


def test_slow_after_zero_never_slows_a_token(env):
    """``slm serve --slow-after 0``: refusals are answered, however many in a row."""
    from api.app import create_app

    client = create_app(env.service, slow_after=0).test_client()
    headers = auth(env, "monitor")
    for n in range(25):
        bad = p1_text(id=f'"bad-{n}"', data_value=str(2**64)).encode()
        assert client.post("/v1/facts", data=bad, content_type="application/json",
                           headers=headers).status_code == 422
    assert client.post("/v1/facts", json=p1("good-1"), headers=headers).status_code == 200
