"""A small fault-injecting HTTP reverse proxy for storage tests.

It forwards every request to an upstream endpoint (moto or MinIO) and, for a chosen fraction of
requests, injects a fault: "500"/"503" instead of forwarding, "drop" (close without a response),
"slow" (forward after `delay_s`), "truncate" (forward, then send half the upstream body under the
full Content-Length and close: a torn download). Faults are drawn from a seeded generator so a
failing test can be replayed. Set `fail_rate = 1.0` for an outage. Usage:

    with FaultyProxy(upstream_url, fail_rate=0.2, seed=1) as proxy:
        use(proxy.url); proxy.faults  # how many were injected
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

FAULTS = ("500", "503", "drop")
ALL_FAULTS = (*FAULTS, "slow", "truncate")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


class FaultyProxy:
    def __init__(self, upstream: str, fail_rate: float = 0.0, seed: int = 0,
                 faults: tuple[str, ...] = FAULTS, delay_s: float = 0.3) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.fail_rate = fail_rate
        self.faults = 0
        self.requests = 0
        self.delay_s = delay_s
        self.injected: dict[str, int] = {}  # fault kind -> how many times
        self._kinds = faults
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def _draw(self) -> str | None:
        with self._lock:
            self.requests += 1
            if self._random.random() < self.fail_rate:
                self.faults += 1
                kind = self._random.choice(self._kinds)
                self.injected[kind] = self.injected.get(kind, 0) + 1
                return kind
            return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy._draw()
                if fault == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault in ("500", "503"):
                    message = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
                    self.send_response(int(fault))
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(message)))
                    self.end_headers()
                    self.wfile.write(message)
                    return
                if fault == "slow":
                    time.sleep(proxy.delay_s)
                upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                    upstream.request(self.command, self.path, body=body or None, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                    self.send_response(response.status, response.reason)
                    for key, value in response.getheaders():
                        if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command == "HEAD":
                        return
                    if fault == "truncate" and len(data) > 1:
                        self.wfile.write(data[: len(data) // 2])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.close()
                        return
                    self.wfile.write(data)
                finally:
                    upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        return Handler

    def __enter__(self) -> FaultyProxy:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
