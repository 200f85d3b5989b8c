"""tests/faulty_proxy.FaultyProxy with two more faults: latency and truncated bodies.

"slow" delays the response by `delay_s`; "truncate" forwards the request but sends only half
of the upstream body under the full Content-Length, then closes: a torn download.
"""

from __future__ import annotations

import http.client
import time
from http.server import BaseHTTPRequestHandler

from tests.faulty_proxy import HOP_BY_HOP, FaultyProxy

ALL_FAULTS = ("500", "503", "drop", "slow", "truncate")


class StorageFaults(FaultyProxy):
    def __init__(self, upstream: str, fail_rate: float, seed: int,
                 faults: tuple[str, ...] = ALL_FAULTS, delay_s: float = 0.3) -> None:
        super().__init__(upstream, fail_rate=fail_rate, seed=seed, faults=faults)
        self.delay_s = delay_s
        self.injected: dict[str, int] = {}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _fail(self, status: int) -> None:
                message = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(message)))
                self.end_headers()
                self.wfile.write(message)

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy._draw()
                if fault is not None:
                    proxy.injected[fault] = proxy.injected.get(fault, 0) + 1
                if fault == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault in ("500", "503"):
                    self._fail(int(fault))
                    return
                if fault == "slow":
                    time.sleep(proxy.delay_s)
                upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port,
                                                      timeout=30)
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
