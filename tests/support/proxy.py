"""A TCP proxy in front of PostgreSQL that a test can cut, as a network partition would.

``cut()`` stops relaying bytes in both directions without closing anything: the client's
statements hang, as they do when a link dies silently (no reset, nothing until TCP gives
up), and new connections are accepted and never answered. ``heal()`` closes every
connection made so far (the client sees them broken) and relays new ones again.
"""
from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit, urlunsplit


class TcpProxy:
    """Relays 127.0.0.1:``port`` to ``target``; :meth:`cut` and :meth:`heal` it."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._cut = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []

    @classmethod
    def before(cls, url: str) -> tuple[TcpProxy, str]:
        """A started proxy to the database of ``url``, and ``url`` through it."""
        parts = urlsplit(url)
        proxy = cls((parts.hostname or "127.0.0.1", parts.port or 5432)).start()
        user = parts.netloc.rpartition("@")[0]
        return proxy, urlunsplit(parts._replace(netloc=f"{user + '@' if user else ''}127.0.0.1:{proxy.port}"))

    def start(self) -> TcpProxy:
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()
        return self

    def cut(self) -> None:
        self._cut.set()

    def heal(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _close(sock)
        self._cut.clear()

    def stop(self) -> None:
        self._closed.set()
        _close(self._listener)
        self.heal()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._keep(client)
            if self._cut.is_set():
                continue                          # accepted, never answered: the link is down
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            self._keep(upstream)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), name="proxy-pump", daemon=True).start()

    def _keep(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if not data:
                _close(sink)
                return
            if self._cut.is_set():
                continue                          # dropped: the link is down
            try:
                sink.sendall(data)
            except OSError:
                _close(source)
                return


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
