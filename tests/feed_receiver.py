"""A province's receiving endpoint for the feed tests: a real HTTP server on 127.0.0.1 in a thread.

It records every POST (headers and JSON body) and answers each with the next status of `plan`,
then with `default`. `accepted()` is every record of the requests it answered 2xx, in order: what
the province has taken.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    status: int  # what the receiver answered
    headers: dict[str, str]
    body: dict[str, Any]


class Receiver:
    def __init__(self, plan: Iterable[int] = (), default: int = 200) -> None:
        self.plan = list(plan)
        self.default = default
        self.received: list[Received] = []
        self._lock = threading.RLock()
        self._got = threading.Condition(self._lock)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="receiver", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/feed"

    def set_default(self, status: int) -> None:
        with self._lock:
            self.default = status

    def accepted(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r for got in self.received if 200 <= got.status < 300 for r in got.body["records"]]

    def wait_for(self, predicate: Any, timeout: float = 60.0) -> None:
        """Until `predicate(self)` holds after some request (AssertionError after `timeout`)."""
        with self._got:
            if not self._got.wait_for(lambda: predicate(self), timeout):
                raise AssertionError(f"receiver: not reached in {timeout} s; got {len(self.received)} "
                                     f"request(s): {[r.status for r in self.received]}")

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, headers: dict[str, str], body: dict[str, Any]) -> int:
        with self._got:
            status = self.plan.pop(0) if self.plan else self.default
            self.received.append(Received(status, headers, body))
            self._got.notify_all()
            return status

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length).decode("utf-8"))
                status = receiver._answer(dict(self.headers.items()), body)
                answer = b'{"ok": true}' if status < 300 else b'{"error": "test"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's name)
                return

        return Handler
