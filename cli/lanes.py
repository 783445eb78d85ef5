"""Waitress with a lane of its own for health and metrics.

Every request thread may be busy (waiting its turn for the write lock, or reading a large
page) exactly when a probe asks whether the service is alive. Requests for
:data:`OPS_PATHS` are therefore served by a small pool of their own, so ``/healthz``,
``/readyz`` and ``/metrics`` never queue behind the API's requests; they take no write
lock either (api/ops.py reads the clocks read model).

Waitress takes a dispatcher only through its private ``_dispatcher`` argument, and the
dispatcher reads the request off waitress's task: both are internals, so waitress is
pinned below its next major version and tests/test_lanes.py runs :func:`create_server`
against the installed waitress, failing if either changes.
"""
from __future__ import annotations

from waitress import create_server as waitress_server
from waitress.task import ThreadedTaskDispatcher

OPS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
OPS_THREADS = 2


class LaneDispatcher:
    """Waitress's task dispatcher, twice: a channel whose next request is for an ops path
    goes to the ops pool, every other one to the API's pool. (Waitress hands a channel to
    the dispatcher once per request, so a kept-alive connection is routed request by
    request.)"""

    def __init__(self, threads: int, ops_threads: int = OPS_THREADS):
        self.api, self.ops = ThreadedTaskDispatcher(), ThreadedTaskDispatcher()
        self.api.set_thread_count(threads)
        self.ops.set_thread_count(ops_threads)

    def add_task(self, task) -> None:
        requests = getattr(task, "requests", None)
        path = getattr(requests[0], "path", None) if requests else None
        (self.ops if path in OPS_PATHS else self.api).add_task(task)

    def shutdown(self, cancel_pending: bool = True, timeout: float = 5) -> bool:
        api = self.api.shutdown(cancel_pending, timeout)
        return self.ops.shutdown(cancel_pending, timeout) and api


def create_server(app, *, host: str, port: int, threads: int, **options):
    """A waitress server for ``app`` whose probes have their own lane; ``options`` go to waitress."""
    return waitress_server(app, host=host, port=port, threads=threads, _dispatcher=LaneDispatcher(threads),
                           **options)
