"""The database goes away (engine/store/connection.py): a connection the server closed is
replaced at its thread's next use; what met it raises DatabaseUnavailable and commits
nothing; while the database refuses connections, the store says so and recovers once it
answers. Sessions are ended with ``pg_terminate_backend``, as a restart of the database
would end them. Nothing here asserts how fast anything is.
"""
from __future__ import annotations

import threading
import time

import pytest

from engine.store.probe import Probe
from engine.store.store import DatabaseUnavailable, Store
from tests.support import free_port, named_sessions, postgres_schema_url, terminate_sessions
from tests.support.proxy import TcpProxy

pytestmark = pytest.mark.postgres
PATIENCE = 60                  # seconds any wait here may take before the test gives up


@pytest.fixture
def named():
    """A store on a fresh schema whose sessions carry a name of their own."""
    with postgres_schema_url() as url:
        url, name = named_sessions(url)
        store = Store.open(url)
        yield store, name
        store.close()


def token_names(store: Store) -> set[str]:
    return {token["name"] for token in store.tokens()}


def test_the_next_statement_after_the_session_ended_connects_afresh(named):
    store, name = named
    store.add_token("monitor", name="before")
    assert terminate_sessions(name) == 1
    with pytest.raises(DatabaseUnavailable, match="connection to the database was lost"):
        store.tokens()                          # the statement that met the closed connection
    assert token_names(store) == {"before"}     # the same thread, a new connection
    assert terminate_sessions(name) == 1
    store.add_token("monitor", name="after")    # a transaction's BEGIN may take a new one at once
    assert token_names(store) == {"before", "after"}


def test_a_transaction_that_lost_its_connection_raises_and_commits_nothing(named):
    store, name = named
    with pytest.raises(DatabaseUnavailable, match="nothing of the transaction was committed"):
        with store.transaction():
            store.add_token("monitor", name="lost")
            terminate_sessions(name)
            store.add_token("monitor", name="lost too")
    with pytest.raises(DatabaseUnavailable, match="nothing of the transaction was committed"):
        with store.transaction():
            store.add_token("monitor", name="swallowed")
            terminate_sessions(name)
            try:
                store.tokens()
            except DatabaseUnavailable:
                pass                            # a caller that ignores it cannot commit either
    assert token_names(store) == set()
    store.add_token("monitor", name="kept")
    assert token_names(store) == {"kept"}


def test_every_thread_recovers_by_itself(named):
    store, name = named
    used, ended, results = threading.Barrier(4), threading.Event(), {}

    def worker(n: int) -> None:
        store.tokens()
        used.wait(PATIENCE)
        ended.wait(PATIENCE)
        outcomes = []
        for _ in range(2):
            try:
                store.add_token("monitor", name=f"thread-{n}-{len(outcomes)}")
                outcomes.append("stored")
            except DatabaseUnavailable:
                outcomes.append("unavailable")
        results[n] = outcomes
        store.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    used.wait(PATIENCE)
    assert terminate_sessions(name) >= 3
    ended.set()
    for thread in threads:
        thread.join(PATIENCE)
    assert all(outcomes[-1] == "stored" for outcomes in results.values()), results
    stored = {f"thread-{n}-{i}" for n, outcomes in results.items()
              for i, outcome in enumerate(outcomes) if outcome == "stored"}
    store.close()                               # this thread's session was ended too
    assert token_names(store) == stored


def test_a_database_that_refuses_connections_is_unavailable_until_it_answers(named):
    store, _ = named
    port = store.db.connect_params.get("port", 5432)
    store.close()
    store.db.connect_params["port"] = free_port()          # nothing listens there
    with pytest.raises(DatabaseUnavailable, match="cannot connect to the database"):
        store.ping()
    with pytest.raises(DatabaseUnavailable, match="cannot connect to the database"):
        store.add_token("monitor")
    store.db.connect_params["port"] = port
    deadline = time.monotonic() + PATIENCE
    while True:                                 # after the backoff, the next attempt connects
        try:
            store.ping()
            break
        except DatabaseUnavailable:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    store.add_token("monitor", name="back")
    assert token_names(store) == {"back"}


def test_a_probe_of_a_hung_database_answers_in_bounded_time_and_recovers():
    """A link that dies silently (the proxy relays nothing and closes nothing): the probe
    says so within its timeout, says at once that its question is still unanswered, and
    answers again once the link is back."""
    with postgres_schema_url() as url:
        proxy, proxied = TcpProxy.before(url)
        store = Store.open(proxied)
        store._probe = Probe(store._ping_and_close, timeout=0.5)
        try:
            store.probe()
            proxy.cut()
            with pytest.raises(DatabaseUnavailable, match=r"did not answer within 0\.5s"):
                store.probe()
            with pytest.raises(DatabaseUnavailable, match="has not answered a probe sent"):
                store.probe()
            proxy.heal()
            deadline = time.monotonic() + PATIENCE
            while True:
                try:
                    store.probe()
                    break
                except DatabaseUnavailable:
                    assert time.monotonic() < deadline, "the probe never answered again"
                    time.sleep(0.2)
        finally:
            proxy.heal()
            proxy.stop()
            store.close()
