"""Live updates: the change feed of the console process and its Server-Sent Events streams.

One `LiveFeed` per app watches the head of the audit log (every stored event, device state, finding
and manual action is a log entry) and the hall clock's minute, polling the store every
`poll_seconds` on a worker thread. The same poll serves `hall-hub run` (the console's own connection
pool to the store the ingest thread writes) and `hall-hub web` (a store written by another process):
nothing in ingest waits for it or knows about it.

Each SSE client is a `Subscriber` with a small bounded queue: a change is offered with `put_nowait`,
and a client whose queue is full (it stopped reading) is dropped: its stream ends and its browser's
EventSource reconnects, getting the current state first. Streams send a heartbeat comment when
nothing happened for `HEARTBEAT_S`. `close()` ends every stream (the server stops).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import tzinfo

from hub.store.store import Store

log = logging.getLogger(__name__)

POLL_S = 0.5  # how often the log's head is read: an event reaches the page within ~1 s
HEARTBEAT_S = 15.0  # a comment line on a quiet stream (proxies and the browser keep it open)
RETRY_MS = 2000  # the EventSource's reconnection delay after the hub went away
QUEUE_SIZE = 8  # changes waiting for one client; past that the client is dropped
FAILURE_BACKOFF_S = 2.0


@dataclass(frozen=True)
class Change:
    """What the pages depend on: the log's last position and the hall clock's minute."""

    head: int
    minute: str  # "YYYY-MM-DDTHH:MM" in the hall's time zone


class Subscriber:
    """One SSE client: its bounded queue of changes (None: the feed closed)."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[Change | None] = asyncio.Queue(maxsize=size)
        self.dropped = False


class LiveFeed:
    """The console's change feed: one polling task on the server's event loop, started by the first
    subscriber; `close_threadsafe()` from the thread that stops the server."""

    def __init__(self, store: Store, tz: tzinfo, poll_seconds: float = POLL_S,
                 queue_size: int = QUEUE_SIZE) -> None:
        self.store, self.tz = store, tz
        self.poll_seconds = poll_seconds
        self.queue_size = queue_size
        self.current: Change | None = None
        self._subscribers: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._lock = threading.Lock()  # guards _loop between the server's thread and close_threadsafe

    @property
    def clients(self) -> int:
        return len(self._subscribers)

    def _read(self) -> Change:
        """On a worker thread: the head and the minute now."""
        head = self.store.last_audit()
        minute = self.store.clock.now().astimezone(self.tz).strftime("%Y-%m-%dT%H:%M")
        return Change(head.seq if head is not None else 0, minute)

    async def subscribe(self) -> Subscriber:
        """A new client; the feed knows the current state when this returns."""
        subscriber = Subscriber(self.queue_size)
        if self._closed:
            subscriber.queue.put_nowait(None)
            return subscriber
        if self._task is None:
            with self._lock:
                self._loop = asyncio.get_running_loop()
            self.current = await asyncio.to_thread(self._read)
            self._task = asyncio.create_task(self._poll(), name="live-feed")
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    async def _poll(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.poll_seconds)
            try:
                change = await asyncio.to_thread(self._read)
            except Exception:  # the store is busy or gone for a moment: the feed goes on
                log.exception("live feed: reading the log's head failed; retrying")
                await asyncio.sleep(FAILURE_BACKOFF_S)
                continue
            if change != self.current:
                self.current = change
                self.publish(change)

    def publish(self, change: Change) -> None:
        """Offer a change to every client; one whose queue is full is dropped (never waited for)."""
        for subscriber in list(self._subscribers):
            try:
                subscriber.queue.put_nowait(change)
            except asyncio.QueueFull:
                subscriber.dropped = True
                self._subscribers.discard(subscriber)
                log.warning("live feed: a client that stopped reading was dropped")

    def close(self) -> None:
        """End every stream and the polling task (on the server's loop)."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
        for subscriber in list(self._subscribers):
            subscriber.dropped = True
            with contextlib.suppress(asyncio.QueueFull):  # if full: dropped, ends at its next item
                subscriber.queue.put_nowait(None)
        self._subscribers.clear()

    def close_threadsafe(self) -> None:
        """`close()` from another thread (WebServer.stop); nothing to do if no client ever came."""
        with self._lock:
            loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                loop.call_soon_threadsafe(self.close)
        else:
            self._closed = True


def sse_frame(event: str, html: str) -> str:
    """One SSE message: each line of `html` as a `data:` line (the browser joins them with \\n)."""
    return f"event: {event}\n" + "".join(f"data: {line}\n" for line in html.splitlines() or [""]) + "\n"


async def sse_stream(feed: LiveFeed, event: str, render: Callable[[], Awaitable[str | None]],
                     heartbeat_s: float = HEARTBEAT_S) -> AsyncIterator[str]:
    """The body of one client's stream: the current fragment first (so a reconnect re-renders), then
    a fresh fragment after each change (changes queued meanwhile are coalesced into one), heartbeat
    comments in between. Ends when the feed closes or drops the client, or `render` gives None
    (the caller may no longer see it)."""
    subscriber = await feed.subscribe()
    try:
        yield f"retry: {RETRY_MS}\n\n"
        if subscriber.dropped:
            return
        html = await render()
        if html is None:
            return
        yield sse_frame(event, html)
        while True:
            try:
                change = await asyncio.wait_for(subscriber.queue.get(), heartbeat_s)
            except TimeoutError:
                yield ": heartbeat\n\n"
                continue
            while change is not None and not subscriber.queue.empty():
                change = subscriber.queue.get_nowait()
            if change is None or subscriber.dropped:
                return
            html = await render()
            if html is None:
                return
            yield sse_frame(event, html)
    finally:
        feed.unsubscribe(subscriber)
