"""A platform that misbehaves on the wire, for the attacks on platform calls: an HTTP proxy on a
free loopback port in front of a real receiver (or of nothing), over real sockets.

Each request is read whole, then `rule(method, target, body)` picks what happens to it:

- `PASS`: forwarded to the receiver, and its answer sent back as it came (signature included);
- `TRICKLE`: forwarded (so the receiver, if there is one, applies an order), then an answer's
  first line and one header byte at a time, every `pace` seconds, not finishing (until `limit`):
  per-read timeouts never fire;
- `SWALLOW`: neither forwarded nor answered; the connection is kept open and silent. The request
  is kept, and `deliver()` sends it to the receiver later, as a delayed delivery would;
- `FORGE`: answered by the proxy itself, in the receiver's name, with `forged` (status, JSON),
  never forwarded: what someone on the path would answer;
- `BAD_GATEWAY`: answered 502 by the proxy itself, as a load balancer would, never forwarded.

`refuse_connections()` stops listening (new connections are refused: nothing sent reaches
anyone, as while a receiver restarts) until `accept_connections()`; a rule may call it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

PASS, TRICKLE, SWALLOW, FORGE, BAD_GATEWAY = "pass", "trickle", "swallow", "forge", "bad_gateway"
Rule = Callable[[str, str, bytes], str]


@dataclass(frozen=True)
class Seen:
    """One request as it reached the proxy."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    mode: str

    @property
    def order(self) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(self.body) if self.body else {}
        return decoded


@dataclass
class Platform:
    """The proxy; `upstream` is the receiver's base URL (None: nothing behind it)."""

    upstream: str | None
    rule: Rule = field(default=lambda method, target, body: PASS)
    pace: float = 0.02
    # A trickle or a silence stops by itself after this long (the connection is then closed),
    # so that a run whose client never gives up still ends; tests assert what ended the call.
    limit: float = 90.0
    forged: tuple[int, dict[str, Any]] = (200, {})
    seen: list[Seen] = field(default_factory=list)
    swallowed: list[Seen] = field(default_factory=list)
    _closing: threading.Event = field(default_factory=threading.Event)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _open: set[socket.socket] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.port: int = 0
        self.accept_connections()

    def accept_connections(self) -> None:
        """Listen (again, on the same port)."""
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def refuse_connections(self) -> None:
        """Stop listening: a connection is refused until `accept_connections()`. The
        connections already open are kept (a swallowed request stays swallowed)."""
        _shut(self._listener)  # a shutdown wakes the thread blocked in accept(); close alone not

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for(self, mode: str, count: int = 1, timeout: float = 30.0) -> None:
        """Return once `count` requests were given `mode` (AssertionError after `timeout`)."""
        with self._changed:
            done = self._changed.wait_for(
                lambda: sum(1 for s in self.seen if s.mode == mode) >= count, timeout
            )
        assert done, f"fewer than {count} request(s) were given {mode}"

    def deliver(self) -> list[tuple[int, dict[str, Any]]]:
        """Send every swallowed request on to the receiver now (late), and answer what it said
        to each (status, JSON)."""
        answers = []
        for request in list(self.swallowed):
            status, _, body = self._forward(request)
            answers.append((status, json.loads(body) if body else {}))
        self.swallowed.clear()
        return answers

    def close(self) -> None:
        self._closing.set()
        self._listener.close()
        with self._changed:
            for sock in list(self._open):
                _shut(sock)
            self._open.clear()

    # --- inside --------------------------------------------------------------------------------

    def _accept(self, listener: socket.socket) -> None:
        while not self._closing.is_set():
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            with self._changed:
                self._open.add(sock)
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            request = _read_request(sock)
            if request is None:
                return
            method, target, headers, body = request
            mode = self.rule(method, target, body)
            seen = Seen(method, target, headers, body, mode)
            with self._changed:
                self.seen.append(seen)
                if mode == SWALLOW:
                    self.swallowed.append(seen)
                self._changed.notify_all()
            if mode == SWALLOW:
                self._closing.wait(self.limit)  # silent, the connection open
                return
            if mode == FORGE:
                status, answer = self.forged
                sock.sendall(_response(status, [], json.dumps(answer).encode()))
                return
            if mode == BAD_GATEWAY:
                sock.sendall(_response(502, [], b"<html>502 Bad Gateway</html>"))
                return
            if mode == PASS:
                sock.sendall(_response(*self._forward(seen)))
                return
            if self.upstream is not None:
                self._forward(seen)  # the receiver applies it; its answer is not passed on
            sock.sendall(b"HTTP/1.1 200 OK\r\nX-Pad: ")
            for _ in range(int(self.limit / self.pace)):
                if self._closing.wait(self.pace):
                    break
                sock.sendall(b"a")  # one byte at a time: until the client hangs up
        except OSError:
            return
        finally:
            with self._changed:
                self._open.discard(sock)
            _shut(sock)

    def _forward(self, request: Seen) -> tuple[int, list[tuple[str, str]], bytes]:
        assert self.upstream is not None, "nothing behind this proxy to forward to"
        parts = urlsplit(self.upstream)
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        try:
            skip = {"host", "content-length", "connection", "accept-encoding"}
            headers = {name: value for name, value in request.headers if name.lower() not in skip}
            connection.request(request.method, request.target, body=request.body, headers=headers)
            answer = connection.getresponse()
            return answer.status, answer.getheaders(), answer.read()
        finally:
            connection.close()


def _read_request(sock: socket.socket) -> tuple[str, str, list[tuple[str, str]], bytes] | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])]
    length = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        body += chunk
    return method, target, headers, body


def _response(status: int, headers: list[tuple[str, str]], body: bytes) -> bytes:
    skip = {"content-length", "connection", "transfer-encoding", "date", "server"}
    lines = [f"HTTP/1.1 {status} {http.client.responses.get(status, 'Status')}"]
    lines += [f"{k}: {v}" for k, v in headers if k.lower() not in skip]
    lines += [f"Content-Length: {len(body)}", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
