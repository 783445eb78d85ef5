"""The ``global`` partition (docs/SCALING.md §2, option (b)), without HTTP: a worker's
services, one per partition, on one PostgreSQL database, and a Rule that counts breaches
across services, so across partitions.

What ``global`` decides from the decisions the other partitions feed it must be what one
process decides from the same facts: the same decisions with the same ids and instants,
and the same retractions when a late fact takes a fed breach back.
"""
from __future__ import annotations

import shutil
import textwrap
from datetime import timedelta

import pytest

from engine.eval.engine import Engine
from engine.lang.errors import RuleSetError
from engine.lang.loader import load_rules
from engine.lang.partitions import GLOBAL, PartitionMap
from engine.lang.rulescope import RuleScope, has_global_rules
from engine.service.live import SlmService
from engine.service.whatif import what_if
from engine.store.store import Store
from tests.support import PORTFOLIO, fact, postgres_schema_url, utc
from tests.support.waiting import until

pytestmark = pytest.mark.wallclock     # leases run on the database's clock: the machine's

ACROSS = textwrap.dedent("""\
    kind: Rule
    id: breaches-across-services
    description: Two breaches in a day, whatever their services, point at something shared.
    when:
      count: 2
      of: {type: decision.breach, where: {target: {in: [email-p1-response, hosting-p1-response]}}}
      within: 1d
    then:
      - decide: {kind: shared-cause-suspected, severity: major,
                 message: "{{ count }} breaches across services within a day"}
    """)
MAP = PartitionMap({"email": "mail"}, default="main")
LONG = timedelta(minutes=10)
RULED = "shared-cause-suspected"

EMAIL_P1 = fact("m1", subject="INC-1", service="email", time="2026-11-02T09:00:00Z", priority="P1")
HOSTING_P1 = fact("h1", subject="HOST-1", service="hosting", time="2026-11-02T09:05:00Z", priority="P1")
# acknowledged in time after all: the email breach is retracted, and what rests on it
EMAIL_ACK = fact("m2", type="incident.acknowledged", subject="INC-1", service="email",
                 time="2026-11-02T09:10:00Z")


@pytest.fixture
def rules(tmp_path):
    root = tmp_path / "rules"
    shutil.copytree(PORTFOLIO, root)
    (root / "policies" / "across.yaml").write_text(ACROSS)
    return root


def test_each_partition_runs_its_share_of_the_rules(rules):
    ruleset = load_rules(rules)
    assert has_global_rules(ruleset, MAP) and not has_global_rules(ruleset, PartitionMap.single())
    local, central = RuleScope(MAP, "mail"), RuleScope(MAP, GLOBAL)
    assert "breaches-across-services" not in local(ruleset).rules
    assert set(central(ruleset).rules) == {"breaches-across-services"}
    assert local(ruleset).version == central(ruleset).version == ruleset.version
    assert local.fed_kinds(ruleset) == {"breach"} and central.fed_kinds(ruleset) == frozenset()
    whole = RuleScope(PartitionMap.single(), "default")
    assert whole(ruleset) is ruleset and whole.fed_kinds(ruleset) == frozenset()
    # an engine given the share runs it for every version it is handed
    engine = Engine(ruleset, scope=local)
    assert "breaches-across-services" not in engine.ruleset.rules


def decided(store: Store) -> list[tuple[str, str, str, str | None]]:
    """(id, kind, at, what it retracts) of the cross-partition Rule's decisions and their
    retractions, in id order."""
    listed = store.list_decisions(limit=1000)[0]
    ruled = {d["id"] for d in listed if d["kind"] == RULED}
    return sorted((d["id"], d["kind"], d["at"], d["data"].get("retracts")) for d in listed
                  if d["id"] in ruled or d["data"].get("retracts") in ruled)


def post_in_turn(ingest, wall):
    """The facts in event-time order, the clock moved past each one's deadlines first: the
    partitions then commit their breaches in the order they fell due, the order one
    process decides them in (``global`` decides in commit order)."""
    for at, posted in (("2026-11-02T09:20:00Z", EMAIL_P1), ("2026-11-02T09:40:00Z", HOSTING_P1)):
        wall.at = utc(at)
        ingest(posted)


@pytest.mark.postgres
def test_global_decides_across_partitions_what_one_process_decides(rules, tmp_path, wall):
    with Store.open(f"sqlite:///{tmp_path / 'alone.db'}") as alone_store:
        alone = SlmService(alone_store, rules, now=wall)
        alone.start(background=False)
        post_in_turn(lambda posted: alone.facts.ingest([posted]), wall)
        before = decided(alone_store)
        alone.facts.ingest([EMAIL_ACK])
        after = decided(alone_store)
        explained = alone.store_reads.explain_fact(EMAIL_P1["id"])
        alone.stop()
    assert [kind for _, kind, _, _ in before] == [RULED]
    assert sorted(kind for _, kind, _, _ in after) == ["retracted", RULED]     # rests on the retracted breach

    with postgres_schema_url() as url:
        made = {}
        try:
            for partition in MAP.evaluated:
                store = Store.open(url, partition=partition)
                made[partition] = SlmService(store, rules, now=wall, role="worker", partitions=MAP,
                                              lease_ttl=LONG, lease_owner=f"host:{partition}")
            wall.at = utc("2026-11-02T09:00:00Z")
            for service in made.values():
                service.start()
            for partition, service in made.items():
                until(service.state.ready.is_set, f"partition {partition} to be owned and ready")
            post_in_turn(lambda posted: made[MAP.partition_of(posted["service"])].facts.ingest([posted]), wall)
            with Store.open(url) as reader:
                until(lambda: decided(reader) == before, "global to decide as one process does")
                made["mail"].facts.ingest([EMAIL_ACK])
                until(lambda: decided(reader) == after, "global to retract as one process does")
                fed = reader.db.execute_sql("SELECT source, type FROM facts WHERE partition = %s ORDER BY pseq",
                                            (GLOBAL,)).fetchall()
                assert {source for source, _ in fed} == {"slm/partition/mail", "slm/partition/main"}
                assert {kind for _, kind in fed} == {"decision.breach", "decision.retracted"}
                assert reader.verify_audit()["ok"]
            # what-if over a partitioned database replays every partition: the same rules change nothing
            with Store.open(url) as reader:
                same = what_if(reader, load_rules(rules), utc("2026-11-01T00:00:00Z"), utc("2026-11-03T00:00:00Z"))
            assert same["facts"] == 3 and not same["changed"], same
            assert {c["target"] for c in same["compliance"]} >= {"email-p1-response", "hosting-p1-response"}
            # any node explains a fact by replaying the log of the partition that evaluated it
            elsewhere = made["main"].store_reads.explain_fact(EMAIL_P1["id"])
            assert explained["clocks"] and elsewhere["clocks"] == explained["clocks"]
            assert elsewhere["decisions"] == explained["decisions"]

            # a new owner of global replays its log and decides nothing again
            count = made["main"].store.decision_count()
            made.pop(GLOBAL).stop()
            again = SlmService(Store.open(url, partition=GLOBAL), rules, now=wall, role="worker", partitions=MAP,
                               lease_ttl=LONG, lease_owner="host:global-2", snapshot_every=0)
            made[GLOBAL] = again
            again.start()
            until(lambda: again.state.ready.is_set(), "the new owner of global to be ready")
            assert again.state.replayed == len(fed)          # no snapshots: the whole log again
            again.deadlines.tick()
            with Store.open(url) as reader:
                assert decided(reader) == after and reader.decision_count() == count
        finally:
            for service in made.values():
                service.stop()
                service.store.close()


UNREACHABLE = textwrap.dedent("""\
    kind: Rule
    id: breach-while-any-clock-runs
    when:
      - {as: b, type: decision.breach}
      - {as: c, type: clock.running, where: {subject: $b.subject}}
    then:
      - decide: {kind: still-running, severity: minor}
    """)


def test_a_reload_that_no_longer_fits_the_map_changes_nothing(rules, tmp_path, wall):
    with Store.open(f"sqlite:///{tmp_path / 'slm.db'}") as store:
        service = SlmService(store, rules, now=wall, partitions=MAP)
        service.start(background=False)
        in_force = service.state.ruleset.version
        (rules / "policies" / "running.yaml").write_text(UNREACHABLE)
        with pytest.raises(RuleSetError, match=r"running\.yaml:5:5: .*clock\.running can never match"):
            service.rules.reload()
        assert service.state.ruleset.version == in_force and service.state.engine.ruleset.version == in_force
        service.stop()
