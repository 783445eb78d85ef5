"""Real ``slm serve`` processes on one database, for the tests of owners, standbys and
workers (tests/e2e): tokens, a pair of servers, what their leases say, histories of facts,
and what must hold of the decisions and the audit afterwards."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import requests

from engine.store.store import Store
from tests.support.serving import Server, all_items, slm
from tests.support.waiting import until as wait_until

TTL = "2s"
PATIENCE = 120                          # seconds any wait here may take before the test gives up
SERVICES = (("email", "P1"), ("hosting", "P2"), ("service-desk", None), ("email", "P2"), ("hosting", "P1"))


def until(predicate, what: str):
    """Wait as long as processes may take, a server not yet listening counting as not yet."""
    return wait_until(predicate, what, patience=PATIENCE, tolerate=(requests.RequestException,))


def token(url: str) -> dict:
    made = slm("token", "create", "--role", "admin", "--db", url)
    assert made.returncode == 0, made.stderr
    return {"Authorization": f"Bearer {made.stdout.strip().splitlines()[-1]}"}


def pair(url: str, tmp_path, headers: dict, *options: str) -> tuple[Server, Server]:
    """The first server (the owner, ready) and the second (a standby, answering)."""
    first = Server(url, tmp_path / "first.log", "--lease-ttl", TTL, "--no-delivery", *options).start()
    second = Server(url, tmp_path / "second.log", "--lease-ttl", TTL, "--no-delivery", *options)
    second.start(ready=False)
    first.headers = second.headers = headers
    until(lambda: named(first, (standby(second) or {}).get("owner", "")),
          "the second to stand by")
    return first, second


def named(server: Server, owner: str) -> bool:
    """Whether a lease's owner (``host:pid:nonce``) is ``server``'s process."""
    return owner.split(":")[1:2] == [str(server.process.pid)]


def standby(server: Server) -> dict | None:
    """The owner's lease as a standby's /readyz shows it; None unless it is a standby."""
    answer = server.readyz()
    body = answer.json()
    return body["lease"] if answer.status_code == 503 and body["status"] == "standby" and body["lease"] else None


def history(incidents: int, prefix: str) -> list[dict]:
    """Incidents opened, acknowledged and resolved hours ago: no deadline of theirs is left
    to fire while the test runs."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
    facts = []
    for n in range(incidents):
        service, priority = SERVICES[n % len(SERVICES)]
        kind = "request" if priority is None else "incident"
        opened = start + timedelta(seconds=30 * n)
        for suffix, minutes in (("opened", 0), ("acknowledged", 5 if n % 3 else 25), ("resolved", 60)):
            facts.append({"id": f"{prefix}{n}-{suffix}", "source": "failover", "type": f"{kind}.{suffix}",
                          "time": _stamp(opened + timedelta(minutes=minutes)), "subject": f"{prefix.upper()}-{n}",
                          "service": service,
                          "data": {"priority": priority} if priority and suffix == "opened" else {}})
    return facts


def due_soon(subject: str, seconds: float) -> tuple[dict, datetime]:
    """A P1 email incident opened so long ago that its 15-minute response target breaches
    ``seconds`` from now; the fact and that deadline."""
    opened = datetime.now(UTC) - timedelta(minutes=15) + timedelta(seconds=seconds)
    opened = opened.replace(microsecond=opened.microsecond // 1000 * 1000)
    fact = {"id": f"{subject}-opened", "source": "failover", "type": "incident.opened", "time": _stamp(opened),
            "subject": subject, "service": "email", "data": {"priority": "P1"}}
    return fact, opened + timedelta(minutes=15)


def _stamp(at: datetime) -> str:
    text = at.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{at.microsecond // 1000:03d}Z" if at.microsecond else "Z")


def post(server: Server, fact: dict) -> requests.Response:
    return requests.post(server.base + "/v1/facts", json=fact, headers=server.headers, timeout=30)


def breaches(url: str, subject: str) -> list[dict]:
    with Store.open(url) as reader:
        return reader.list_decisions(target="email-p1-response", subject=subject, kind="breach", limit=10)[0]


def rows(url: str) -> dict[str, int]:
    """How many rows each table holds (the lease excepted: its renewals are no writes of the
    partition)."""
    with Store.open(url) as reader:
        return {model._meta.table_name: reader.db.execute_sql(f'SELECT count(*) FROM "{model._meta.table_name}"')
                .fetchone()[0] for model in reader.m.all if model._meta.table_name != "partition_leases"}


def metric(server: Server, line_start: str) -> float:
    text = requests.get(server.base + "/metrics", timeout=10).text
    return float(next(line for line in text.splitlines() if line.startswith(line_start)).split()[-1])


def verified(server: Server) -> dict:
    audit = requests.get(server.base + "/v1/audit/verify", headers=server.headers, timeout=60).json()
    assert audit["ok"] and all(chain["ok"] for chain in audit["chains"].values()), audit
    return audit


def decided_once(server: Server) -> list[dict]:
    """Every stored decision, each stored once: by id (ids hash what a decision is about)
    and by what it says."""
    decisions = all_items(server, "/v1/decisions")
    ids = [d["id"] for d in decisions]
    what = [(d["kind"], d.get("target"), d.get("subject"), d["at"], d.get("cycle"), d.get("level"),
             d.get("repeat"), d["rule"]["id"], tuple(d["because"])) for d in decisions]
    assert len(ids) == len(set(ids)) and len(what) == len(set(what))
    return decisions
