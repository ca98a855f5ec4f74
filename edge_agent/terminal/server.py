"""The terminal page's web server: the standard library's ThreadingHTTPServer on its own `terminal`
thread (one thread per open stream), bound to `[terminal] listen` (127.0.0.1 by default: the
box's own screen; no login, so keep it off the hall's LAN).

    GET /              the page (edge_agent/terminal/page/, no asset from elsewhere)
    GET /state         the board as JSON
    GET /events        the board as Server-Sent Events: at each change, and every second (the clock)
    GET /preview.mjpg  the camera preview, multipart/x-mixed-replace (404 without a camera)
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from edge_agent.terminal.preview import Preview

log = logging.getLogger(__name__)
PAGE = Path(__file__).resolve().parent / "page"
FILES = {"/": ("index.html", "text/html; charset=utf-8"),
         "/terminal.css": ("terminal.css", "text/css; charset=utf-8"),
         "/terminal.js": ("terminal.js", "text/javascript; charset=utf-8")}
BOUNDARY = "frame"
BEAT_S = 1.0  # the stream sends the board at least this often (the clock follows the hall clock)

Snapshot = Callable[[], dict[str, Any]]
Wait = Callable[[int, float], int]  # (version seen, timeout) -> current version


class TerminalServer:
    def __init__(self, address: tuple[str, int], snapshot: Snapshot, wait: Wait,
                 preview: Preview | None) -> None:
        self.stop = threading.Event()
        self._snapshot, self._wait, self._preview = snapshot, wait, preview
        handler = type("Handler", (_Handler,), {"terminal": self})
        self._http = ThreadingHTTPServer(address, handler)  # binds now: a taken port fails at start
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="terminal", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> None:
        self._thread.start()
        log.info("terminal page at %s", self.url)

    def close(self) -> None:
        self.stop.set()
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(5)


class _Handler(BaseHTTPRequestHandler):
    terminal: TerminalServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the stdlib's name)
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        path = self.path.split("?", 1)[0]
        try:
            if path in FILES:
                name, kind = FILES[path]
                self._send(200, kind, (PAGE / name).read_bytes())
            elif path == "/state":
                self._send(200, "application/json", _json(self.terminal._snapshot()))
            elif path == "/events":
                self._events()
            elif path == "/preview.mjpg" and self.terminal._preview is not None:
                self._mjpeg(self.terminal._preview)
            else:
                self._send(404, "text/plain; charset=utf-8", "未找到 not found\n".encode())
        except (BrokenPipeError, ConnectionResetError):
            pass  # the page went away (reload, screen off): its stream ends here

    def _send(self, status: int, kind: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _stream_headers(self, kind: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _events(self) -> None:
        self._stream_headers("text/event-stream; charset=utf-8")
        self.wfile.write(b"retry: 1000\n\n")
        version = -1
        while not self.terminal.stop.is_set():
            snapshot = self.terminal._snapshot()
            version = snapshot["version"]
            self.wfile.write(b"data: " + _json(snapshot) + b"\n\n")
            self.wfile.flush()
            self.terminal._wait(version, BEAT_S)

    def _mjpeg(self, preview: Preview) -> None:
        self._stream_headers(f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        for jpeg in preview.jpegs(self.terminal.stop):
            self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}"
                             "\r\n\r\n".encode() + jpeg + b"\r\n")
            self.wfile.flush()


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
