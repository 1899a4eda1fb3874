"""A TCP proxy to put between foureyes and PostgreSQL, which cuts a connection at an exact point.

Every client connection gets its own upstream connection and two pumps. When armed with `cut`,
the first client connection whose outgoing bytes match `pattern` is cut, exactly once:

- ``before``: the matching message is never forwarded: both sockets are closed, so the server
  sees the client vanish mid-transaction (and rolls back) and the client sees the server vanish;
- ``reply``: the message is forwarded, and the server's answer to it is dropped and both sockets
  closed, so the server has done it (a COMMIT has committed) but the client never hears so.

PostgreSQL's protocol carries statement text in clear (Query and Parse messages), so a pattern on
the SQL picks the moment: ``rb"INSERT INTO audit_events"``, ``rb"COMMIT\\x00"``.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from dataclasses import dataclass

CHUNK = 65536


@dataclass
class _Cut:
    pattern: re.Pattern[bytes]
    mode: str
    after: re.Pattern[bytes] | None  # only in a transaction that already sent this


_END = re.compile(rb"(COMMIT|ROLLBACK)\x00")


class TcpProxy:
    """Listens on 127.0.0.1 (a free port) and forwards to `host`:`port`."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self._lock = threading.Lock()
        self._cut: _Cut | None = None
        self.cuts = 0  # connections cut so far
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._closed = False
        self._refusing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self, pattern: bytes, mode: str = "before", *, after: bytes | None = None) -> None:
        """Cut the next connection that sends bytes matching `pattern` (see the module doc);
        with `after`, only if that connection's transaction has already sent `after` (to pick
        one transaction's COMMIT)."""
        if mode not in {"before", "reply"}:
            raise ValueError(mode)
        with self._lock:
            self._cut = _Cut(re.compile(pattern), mode, re.compile(after) if after else None)

    def down(self) -> None:
        """The database is gone: every open connection is cut, new ones are closed at once."""
        with self._lock:
            self._refusing = True
            for sock in list(self._open):
                _shut(sock)
            self._open.clear()

    def up(self) -> None:
        with self._lock:
            self._refusing = False

    def armed(self) -> bool:
        with self._lock:
            return self._cut is not None

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            for sock in list(self._open):
                _shut(sock)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refusing = self._refusing
            if refusing:
                _shut(client)
                continue
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                _shut(client)
                continue
            with self._lock:
                self._open.update((client, server))
            link = _Link(self, client, server)
            threading.Thread(target=link.outgoing, daemon=True).start()
            threading.Thread(target=link.incoming, daemon=True).start()

    def _take(self, link: _Link, data: bytes) -> str | None:
        """The cut's mode if `data` on `link` triggers it (disarming it), else None."""
        with self._lock:
            cut = self._cut
            if cut is None:
                return None
            if cut.after is not None and cut.after.search(data):
                link.primed = True
            if not cut.pattern.search(data) or (cut.after is not None and not link.primed):
                if _END.search(data):
                    link.primed = False
                return None
            self._cut = None
            self.cuts += 1
            return cut.mode


class _Link:
    def __init__(self, proxy: TcpProxy, client: socket.socket, server: socket.socket) -> None:
        self.proxy, self.client, self.server = proxy, client, server
        self.drop_reply = threading.Event()
        self.primed = False

    def close(self) -> None:
        _shut(self.client)
        _shut(self.server)

    def outgoing(self) -> None:
        try:
            while data := self.client.recv(CHUNK):
                mode = self.proxy._take(self, data)
                if mode == "before":
                    return
                if mode == "reply":
                    self.drop_reply.set()
                self.server.sendall(data)
        except OSError:
            pass
        finally:
            if not self.drop_reply.is_set():
                self.close()

    def incoming(self) -> None:
        try:
            while data := self.server.recv(CHUNK):
                if self.drop_reply.is_set():
                    return  # the server answered; the client never hears it
                self.client.sendall(data)
        except OSError:
            pass
        finally:
            self.close()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
