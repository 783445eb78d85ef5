"""A worker's partitions (``slm serve --role worker --partitions FILE``): one service per
partition of the map, each with its own store, engine, lease loop, backlog and deadline
scheduler, so that each partition is owned, evaluated, failed over and snapshotted on its
own (docs/SCALING.md, sections 1 and 6).

Every worker runs a lease loop for every partition of the map, so any worker can take over
any partition. A partition the worker prefers (``--prefer``) it takes the moment it is
free; any other only once it has had no owner for a third of the lease's TTL, which leaves
it to a worker that prefers it. Workers that prefer different partitions thus share them
out, and a partition whose preferred worker died still moves within its TTL plus a third.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from engine.lang.partitions import PartitionMap
from engine.service.live import SlmService
from engine.service.state import OWNER
from engine.store.store import Store

log = logging.getLogger("slm.service")


class PartitionWorkers:
    """The services of one worker process, one per partition, started and stopped together."""

    def __init__(self, services: dict[str, SlmService]):
        if not services:
            raise ValueError("a worker needs at least one partition")
        self.services = services

    @classmethod
    def open(cls, partitions: PartitionMap, open_store: Callable[[str], Store], build: Callable[..., SlmService],
             *, lease_ttl: timedelta, prefer: frozenset[str] | None = None) -> PartitionWorkers:
        """A service for every partition of the map (and ``global``), each on a store of its own
        (``open_store(partition)``) built by ``build(store, hold_back=…)``. ``prefer``: the
        partitions taken at once (None: all)."""
        hold_back = lease_ttl / 3
        services = {}
        for partition in partitions.evaluated:
            preferred = prefer is None or partition in prefer
            services[partition] = build(open_store(partition), hold_back=timedelta(0) if preferred else hold_back)
        return cls(services)

    @property
    def first(self) -> SlmService:
        """The default partition's service (or the first): what stands for the worker where
        one service is asked for (the rule set, the store's reads)."""
        return self.services.get("default") or next(iter(self.services.values()))

    def start(self, on_failure: Callable[[BaseException], None] | None = None) -> None:
        for service in self.services.values():
            service.start(background=True, on_failure=on_failure)

    def stop(self) -> None:
        """Stop every partition's service: each snapshots what it owns, then hands it over."""
        for partition, service in self.services.items():
            try:
                service.stop()
            except Exception:
                log.exception("stopping partition %r failed", partition)

    def status(self) -> dict:
        """Readiness of the worker (``/readyz``): ``ready`` once it owns a partition and every
        partition it owns is rebuilt; ``standby`` while it owns none; ``starting`` while one
        it owns is rebuilding. Each partition's role, readiness and lease as last seen."""
        shown = []
        for partition, service in sorted(self.services.items()):
            state = service.state
            ownership = state.ownership() or {"role": state.role, "lease": None}
            shown.append({"partition": partition, "role": ownership["role"], "ready": state.ready.is_set(),
                          "lease": ownership["lease"]})
        owned = [p for p in shown if p["role"] == OWNER]
        status = "standby" if not owned else "ready" if all(p["ready"] for p in owned) else "starting"
        return {"status": status, "owned": [p["partition"] for p in owned], "partitions": shown}
