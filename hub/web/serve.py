"""Serving the console with uvicorn: in its own thread inside `hall-hub run` (never blocking ingest),
or alone in the foreground for `hall-hub web` (a hall's console, or a city's: `WebServer(web, app)`)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import uvicorn
from fastapi import FastAPI
from starlette.routing import Mount

from hub.config import HubConfig, WebConfig
from hub.store.store import Store
from hub.web.app import create_app

log = logging.getLogger(__name__)
READY_TIMEOUT_S = 15.0
STREAMS_GRACE_S = 3.0  # open responses (live streams) get this long when the server stops


class WebServer:
    """uvicorn.Server on `[web] listen`, its own event loop in a named thread; `stop()` ends it."""

    @classmethod
    def of_hall(cls, config: HubConfig, store: Store) -> WebServer:
        return cls(config.web, create_app(config, store))

    def __init__(self, web: WebConfig, app: FastAPI) -> None:
        """`app`: a hall's console, or a city's (hub/web/city_app.py), served on `web.listen`."""
        host, port = web.host_port
        self.url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/"
        self.app = app
        self._server = uvicorn.Server(uvicorn.Config(
            self.app, host=host, port=port, log_level="warning", access_log=False,
            lifespan="off", server_header=False, timeout_graceful_shutdown=STREAMS_GRACE_S))
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Serve in a thread; returns once listening. Raises ValueError (a user's mistake: the
        address is taken or not this host's) when it cannot listen."""
        self._thread = threading.Thread(target=self._serve, name="web", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop(timeout=1.0)
                raise ValueError(f"web console could not listen on {self.url} (address in use, or "
                                 "not this host's? see [web] listen)")
            self._thread.join(0.05)
        log.info("web console ready: %s", self.url)

    def _serve(self) -> None:
        asyncio.run(self._server.serve())

    def serve_until(self, stop: threading.Event) -> None:
        """Serve until `stop` is set (by the caller's SIGTERM or SIGINT handler)."""
        self.start()
        print(f"web console ready: {self.url}", flush=True)
        stop.wait()
        self.stop()

    def stop(self, timeout: float = 10.0) -> None:
        for app in [self.app, *(route.app for route in self.app.routes if isinstance(route, Mount))]:
            live = getattr(app.state, "live", None) if isinstance(app, FastAPI) else None
            if live is not None:  # the live streams end, so uvicorn need not wait
                live.feed.close_threadsafe()
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
