"""Evaluation throughput over two partitions: one worker against two (docs/OPERATIONS.md).

Real ``slm serve --role worker --partitions`` processes on a scratch schema of the
PostgreSQL server at ``--db``, with the shipped rules and the map ``email → mail``,
everything else ``main``. Once the workers own their partitions, ``--facts`` facts (half
for each partition, the mix of bench/ingest.py) are stored unevaluated in one transaction,
as API nodes store them, and the time until none is pending is measured.

- **Baseline:** one worker owning both partitions: its two engines share one process,
  so one core (the GIL).
- **Measured:** two workers, each preferring one partition and pinned to its own core
  (``taskset``, when there are two cores to pin to).

Printed: facts/s of each and their ratio (the target is at least 1.7).

Run after ``make install``:  .venv/bin/python bench/partitions.py --db postgresql://postgres@127.0.0.1/test
[--facts 20000] [--lease-ttl 3s]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from ingest import ROOT, facts, free_port, scratch_database

sys.path.insert(0, str(ROOT))
from engine.store.store import Store  # noqa: E402 - the project's root is on the path only now

MAP = "partitions: {email: mail}\ndefault: main\n"


class Worker:
    def __init__(self, url: str, partition_map: Path, prefer: str, ttl: str, core: int | None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        pin = ["taskset", "-c", str(core)] if core is not None else []
        self.process = subprocess.Popen(
            [*pin, sys.executable, "-m", "cli", "serve", "--db", url, "--port", str(self.port), "--role", "worker",
             "--partitions", str(partition_map), "--prefer", prefer, "--lease-ttl", ttl, "--no-delivery",
             "--snapshot-every", "0", "--rules", "rules"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def owned(self) -> list[str]:
        try:
            return requests.get(self.base + "/readyz", timeout=2).json().get("owned", [])
        except (requests.RequestException, ValueError):
            return []

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(120)


def wait_for(predicate, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up waiting for {what}")
        time.sleep(0.1)


def spread(loaded: list[dict]) -> list[dict]:
    """Half the facts' subjects to email (partition mail), half to hosting (main)."""
    out = []
    for fact in loaded:
        number = int(fact["id"].rsplit("-", 1)[1]) // 4
        out.append({**fact, "service": "email" if number % 2 == 0 else "hosting"})
    return out


def throughput(postgres: str, partition_map: Path, count: int, ttl: str, workers: int) -> float:
    """Facts/s evaluated by ``workers`` workers (1: owning both partitions)."""
    cores = os.cpu_count() or 1
    pin = workers > 1 and cores >= 2 and shutil.which("taskset") is not None
    with scratch_database(postgres) as url:
        with Store.open(url):
            pass                                   # the schema, before the workers race to make it
        plan = [("mail,main", None)] if workers == 1 else [("mail", 0), ("main", 1)]
        nodes = [Worker(url, partition_map, prefer, ttl, core if pin else None) for prefer, core in plan]
        try:
            if workers == 1:
                wait_for(lambda: nodes[0].owned() == ["mail", "main"], "the worker to own both partitions")
            else:
                wait_for(lambda: nodes[0].owned() == ["mail"] and nodes[1].owned() == ["main"],
                         "each worker to own its partition")
            loaded = spread(facts("p", count))
            with Store.open(url) as store:
                started = time.monotonic()
                with store.transaction():
                    for partition, service in (("mail", "email"), ("main", "hosting")):
                        mine = [f for f in loaded if f["service"] == service]
                        for start in range(0, len(mine), 1000):
                            store.add_pending_facts(mine[start:start + 1000], partition=partition)
                while store.pending_count():
                    time.sleep(0.05)
                return count / (time.monotonic() - started)
        finally:
            for node in nodes:
                node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="PostgreSQL server URL (a scratch schema is made on it)")
    parser.add_argument("--facts", type=int, default=20000)
    parser.add_argument("--lease-ttl", default="3s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        partition_map = Path(tmp) / "partitions.yaml"
        partition_map.write_text(MAP)
        one = throughput(args.db, partition_map, args.facts, args.lease_ttl, workers=1)
        two = throughput(args.db, partition_map, args.facts, args.lease_ttl, workers=2)
    print(f"{args.facts} stored facts over 2 partitions, evaluated by their owners (cores: {os.cpu_count()})")
    print(f"  baseline: 1 worker owning both     {one:8.0f} facts/s")
    print(f"  2 workers, one partition each       {two:8.0f} facts/s")
    print(f"  ratio 2 workers / 1 worker          {two / one:8.2f}   (target >= 1.7)")


if __name__ == "__main__":
    main()
