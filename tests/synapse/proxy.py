"""A counting, fault-injecting HTTP proxy to put in front of Synapse in tests.

It forwards every request to the homeserver and records it (method and path), so a test can say
what reached the homeserver; `fail` makes it answer 502 Bad Gateway to the requests it matches
without forwarding them, as a reverse proxy does when the homeserver behind it is down;
`refuse` answers the requests it matches (method, path, body) with the status and JSON body it
returns instead of forwarding them: the platform refusing one call, as it does for an account it
will not touch.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
}


@dataclass(frozen=True)
class Hit:
    method: str
    path: str  # decoded, without the query
    forwarded: bool


class Proxy:
    """Listens on 127.0.0.1 (a free port) and forwards to `upstream` (`http://host:port`)."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._lock = threading.Lock()
        self._hits: list[Hit] = []
        self.fail: Callable[[str, str], bool] | None = None
        self.refuse: Callable[[str, str, bytes], tuple[int, dict[str, str]] | None] | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def hits(self, fragment: str = "", method: str | None = None) -> list[Hit]:
        with self._lock:
            return [
                hit
                for hit in self._hits
                if fragment in hit.path and (method is None or hit.method == method)
            ]

    def down(self, *, reads_too: bool = False) -> None:
        """Answer 502 to every write (and every read too, with `reads_too`)."""
        self.fail = lambda method, _path: reads_too or method != "GET"

    def up(self) -> None:
        self.fail = None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                del format, args  # quiet: the hits are the record

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                path = unquote(urlsplit(self.path).path)
                failing = proxy.fail is not None and proxy.fail(self.command, path)
                refusal = None
                if not failing and proxy.refuse is not None:
                    refusal = proxy.refuse(self.command, path, body or b"")
                forwarded = not failing and refusal is None
                with proxy._lock:
                    proxy._hits.append(Hit(self.command, path, forwarded=forwarded))
                if refusal is not None:
                    status, answer_body = refusal
                    content = json.dumps(answer_body).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content)
                    return
                if failing:
                    page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
                    self.send_response(502)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                upstream = http.client.HTTPConnection(proxy._host, proxy._port, timeout=60)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    content = answer.read()
                    self.send_response(answer.status)
                    for key, value in answer.getheaders():
                        if key.lower() not in _HOP_BY_HOP:
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content)
                finally:
                    upstream.close()

            do_GET = do_POST = do_PUT = do_DELETE = _relay  # noqa: N815

        return Handler
