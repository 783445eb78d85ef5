"""``slm serve`` as a real process for end-to-end tests: start, SIGKILL, restart."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import requests

from tests.support import PORTFOLIO, ROOT, free_port

# On PostgreSQL a server started after one was killed waits for the killed one's lease to
# run out: 2 s here, not the default 15 s (a test's own --lease-ttl comes later and wins).
LEASE = ("--lease-ttl", "2s")


def slm(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, **kwargs)


class Server:
    """One ``slm serve`` process; ``kill()`` is SIGKILL, ``start()`` starts it again,
    ``pause()`` and ``resume()`` are SIGSTOP and SIGCONT."""

    def __init__(self, db_url: str, log_path, *options: str):
        self.db_url, self.log_path, self.port = db_url, log_path, free_port()
        self.options = list(options)
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self, ready: bool = True) -> Server:
        """Start it and wait until it is ready (``ready=False``: until it answers at all, a
        standby say)."""
        log = open(self.log_path, "a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "--db", self.db_url, "--port", str(self.port),
             "--rules", str(PORTFOLIO), *LEASE, *self.options], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        started = time.monotonic()
        while time.monotonic() - started < 60:
            if self.process.poll() is not None:
                raise RuntimeError(f"slm serve exited {self.process.returncode}: {self.log_path.read_text()}")
            try:
                if requests.get(self.base + "/readyz", timeout=5).status_code == 200 or not ready:
                    return self
            except (requests.ConnectionError, requests.Timeout):
                pass        # not listening yet, or too busy starting to answer: ask again
            time.sleep(0.1)
        raise RuntimeError(f"slm serve did not become ready: {self.log_path.read_text()}")

    def readyz(self) -> requests.Response:
        return requests.get(self.base + "/readyz", timeout=10)

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)      # a paused one must run to stop
            self.process.terminate()
            self.process.wait(10)


def all_items(srv, path, **query):
    items, cursor = [], None
    while True:
        page = requests.get(srv.base + path, params={**query, "limit": 1000, **({"cursor": cursor} if cursor else {})},
                            headers=srv.headers, timeout=30).json()
        items += page["items"]
        cursor = page["next"]
        if not cursor:
            return items
