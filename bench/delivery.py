"""Delivery throughput: notifications per second to a local webhook receiver, beside a
bare loop of HTTP posts to the same receiver in the same run; and ingestion with
delivery on and off.

1. The receiver runs in its own process (a threaded http.server that reads the body and
   answers 200), so neither side's Python shares a GIL with it.
2. Bare loop: ``requests.post`` of a webhook-sized JSON body, one connection per post, as
   the deliverer does; sequential, then with 8 threads (the worker's pool size).
3. The outbox: N notifications stored (each for its own webhook URL, so none is grouped
   and every one is a message of its own), then a DeliveryWorker claims, delivers and
   records them all; notifications per second from start to the last one recorded. Also
   the grouped case: N notifications for one recipient (one message).
4. Ingestion: ``slm serve`` on SQLite, 3,000 P1 incidents posted in batches of 100, with
   the email service's manager a webhook (every breach notifies it), delivery on vs
   ``--no-delivery``.

Run:  .venv/bin/python bench/delivery.py [--quick] [--postgres postgresql://…]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import free_port, scratch_database

RECEIVER = r'''
import sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
count = [0]; lock = threading.Lock()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with lock: count[0] += 1
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def do_GET(self):
        body = str(count[0]).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
s = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H); s.daemon_threads = True; s.serve_forever()
'''


def start_receiver(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)])
    for _ in range(100):
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=1)
            return proc
        except requests.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("receiver did not start")


def bare_loop(url: str, n: int, threads: int) -> float:
    body = json.dumps({"id": "ntf_" + "0" * 24, "type": "slm.notification", "notifications": [
        {"id": "ntf_" + "0" * 24, "activity": "breach-handling", "letters": "R", "recipient": url,
         "message": "breach-handling: escalation of email-p1-response for INC-1 (email) at 100%",
         "decision": {"id": "dec_" + "0" * 24, "kind": "escalation"}, "links": {}}]}).encode()
    headers = {"Content-Type": "application/json", "X-SLM-Signature": "sha256=" + "0" * 64,
               "Idempotency-Key": "ntf_x"}
    per = n // threads

    def run():
        for _ in range(per):
            requests.post(url, data=body, headers=headers, timeout=10).raise_for_status()

    started = time.perf_counter()
    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return per * threads / (time.perf_counter() - started)


def outbox_rate(db_url: str, base: str, n: int, grouped: bool) -> float:
    from engine.notify.deliver import Channels
    from engine.notify.worker import DeliveryWorker
    from engine.store.store import Store
    store = Store.open(db_url)
    store.add_decisions([{"id": "dec_bench", "kind": "escalation", "at": "2026-11-05T03:15:00Z"}])
    tag = uuid.uuid4().hex[:6]
    store.add_notifications([{"id": f"ntf_{tag}{i:08d}", "decision": "dec_bench", "activity": "breach-handling",
                              "recipient": base + ("/hook" if grouped else f"/hook/{i}"), "channel": "webhook",
                              "roles": ["service_level_manager"], "raci": "R",
                              "message": "breach-handling: escalation of email-p1-response for INC-1"}
                             for i in range(n)])
    worker = DeliveryWorker(store, Channels(webhook_secret="bench-secret"), poll=0.01)
    started = time.perf_counter()
    worker.start()
    while store.queue_stats(datetime.now(UTC))["queued"]:
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    worker.stop()
    sent = store.list_notifications(status="sent", limit=1)[0]
    assert sent, "nothing was sent"
    store.close()
    return n / elapsed


def ingest_rate(db_url: str, hook: str, facts: int, delivery: bool, tmp: Path) -> float:
    rules = tmp / f"rules-{uuid.uuid4().hex[:6]}"
    shutil.copytree(ROOT / "rules", rules)
    email = rules / "services" / "email.yaml"
    email.write_text(email.read_text().replace("service_level_manager: slm-mail@example.org",
                                               f"service_level_manager: [slm-mail@example.org, {hook}]"))
    token = subprocess.run([sys.executable, "-m", "cli", "token", "create", "--role", "admin", "--db", db_url],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    port = free_port()
    args = [sys.executable, "-m", "cli", "serve", "--db", db_url, "--port", str(port), "--rules", str(rules),
            "--group-wait", "0s", "--webhook-secret", "bench-secret"] + ([] if delivery else ["--no-delivery"])
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
    try:
        for _ in range(600):
            try:
                if requests.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        opened = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        run = uuid.uuid4().hex[:6]
        batches = [[{"id": f"{run}-{i}", "source": "bench", "type": "incident.opened", "time": opened,
                     "subject": f"INC-{run}-{i}", "service": "email", "data": {"priority": "P1"}}
                    for i in range(start, start + 100)] for start in range(0, facts, 100)]
        started = time.perf_counter()
        for batch in batches:
            requests.post(base + "/v1/facts", json=batch, headers=headers, timeout=120).raise_for_status()
        return facts / (time.perf_counter() - started)
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--postgres", help="also measure the outbox on this PostgreSQL database")
    args = parser.parse_args()
    n = 300 if args.quick else 2000
    port = free_port()
    receiver = start_receiver(port)
    base = f"http://127.0.0.1:{port}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            print(f"webhook posts to a local receiver, {n} each:")
            bare1 = bare_loop(base + "/hook", n, 1)
            bare8 = bare_loop(base + "/hook", n, 8)
            print(f"  bare loop, 1 thread:   {bare1:8.0f} posts/s")
            print(f"  bare loop, 8 threads:  {bare8:8.0f} posts/s")
            for name, postgres in [("sqlite", None)] + ([("postgresql", args.postgres)] if args.postgres else []):
                with scratch_database(postgres) as db:          # PostgreSQL: a scratch schema, dropped after
                    one = outbox_rate(db, base, n, grouped=False)
                    print(f"  slm outbox on {name}, one message per notification: {one:8.0f} notifications/s  "
                          f"(ratio to the bare loop, 8 threads: {one / bare8:.2f}; 1 thread: {one / bare1:.2f})")
                    grouped = outbox_rate(db, base, n, grouped=True)
                    print(f"  slm outbox on {name}, grouped (one recipient):        {grouped:8.0f} notifications/s")
            facts = 1000 if args.quick else 3000
            print(f"ingestion on SQLite, {facts} P1 incidents in batches of 100 (each notifies the webhook):")
            off = ingest_rate(f"sqlite:///{tmp / 'off.db'}", base + "/hook", facts, False, tmp)
            on = ingest_rate(f"sqlite:///{tmp / 'on.db'}", base + "/hook", facts, True, tmp)
            print(f"  delivery off: {off:7.0f} facts/s")
            print(f"  delivery on:  {on:7.0f} facts/s  (on/off {on / off:.2f})")
    finally:
        receiver.terminate()


if __name__ == "__main__":
    main()
