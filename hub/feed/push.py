"""数据归集: push the feed's records to `[feed] url`, resuming from the cursor kept in the log.

The cursor is the ref of the last `feed_sent` entry. A batch is the page after it: POSTed as JSON
(`{"hall", "since", "cursor", "records"}`, `Authorization: Bearer` with the token, the batch's next
cursor as `Idempotency-Key`) until the receiver answers 2xx, then a `feed_sent` entry (cursor,
since, count, url) is appended, moving from exactly the cursor the batch was read after
(`Store.append_after`): what was confirmed is never sent again. Between the confirmation and that
entry (the hub killed there) the batch goes again at the next start; records carry their id and
revision, so a receiver drops what it already has.

A 5xx, 408, 429, a timeout or an unreachable receiver: the same batch again after `backoff_seconds`,
doubled each time, at most `backoff_max_seconds` (or the receiver's Retry-After, within that cap).
Any other 4xx is permanent (`FeedRefused`): a `feed_refused` entry, and the pusher stops until the
hub is restarted or `hall-hub feed push` is run again.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from typing import Protocol

from hub.config import FeedConfig, HubConfig
from hub.domain import AuditEntry
from hub.feed.export import Cursor, Page, ratings_page
from hub.feed.records import province_format
from hub.store.chain import holds
from hub.store.store import StaleRef, Store

log = logging.getLogger(__name__)
SENT_KIND = "feed_sent"
REFUSED_KIND = "feed_refused"
RETRYABLE_4XX = (408, 429)


class FeedError(Exception):
    """Base of the feed's errors."""


class FeedUnavailable(FeedError):
    """The receiver could not take a batch now (unreachable, timeout, 5xx, 408, 429): try again."""


class FeedRefused(FeedError):
    """The receiver refused a batch for good (a 4xx other than 408 and 429)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text}" if text else f"HTTP {status}")
        self.status = status


@dataclass(frozen=True)
class Answer:
    status: int
    text: str  # the start of the body, for the log
    retry_after: float | None = None


class Transport(Protocol):
    """POSTs a body; raises FeedUnavailable when no answer came (refused connection, timeout)."""

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Answer: ...


class UrllibTransport:
    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http(s) only, checked by the config)
                return Answer(response.status, response.read(200).decode("utf-8", "replace"))
        except urllib.error.HTTPError as exc:
            with exc:
                return Answer(exc.code, exc.read(200).decode("utf-8", "replace"),
                              _seconds(exc.headers.get("Retry-After")))
        except (urllib.error.URLError, OSError) as exc:  # refused, unreachable, timed out
            reason = getattr(exc, "reason", exc)
            raise FeedUnavailable(f"{url}: {reason}") from None


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: the backoff decides


@dataclass(frozen=True)
class Pushed:
    batches: int
    records: int
    cursor: Cursor
    stopped: bool = False  # asked to stop while waiting to retry


def stored_cursor(store: Store, hall: str) -> tuple[Cursor, str | None]:
    """The cursor of the last `feed_sent` entry (the start without one) and that entry's ref. An
    entry whose hash does not hold stops the feed: `log verify` names it."""
    last = store.last_audit(SENT_KIND)
    if last is None:
        return Cursor(hall, 0), None
    if not holds(last):
        raise FeedError(f"log entry #{last.seq} ({SENT_KIND}) does not verify: run `hall-hub log verify`")
    return Cursor.parse(last.ref, hall), last.ref


class FeedPusher:
    """Pushes what is pending; `run` is the daemon's thread (named "feed"), `push` one pass."""

    def __init__(self, config: HubConfig, store: Store, transport: Transport | None = None) -> None:
        self.config, self.store = config, store
        self.feed: FeedConfig = config.feed
        self.transport = transport or UrllibTransport()
        province_format(self.feed.province)  # an unknown mapping fails here, not at the first batch
        self._passed = Cursor(config.hall, 0)  # how far a page found nothing more to send (memory only)

    def run(self, stop: threading.Event) -> None:
        """Until `stop`: push what is pending, then wait `interval_seconds`. A refusal ends it."""
        while not stop.is_set():
            try:
                done = self.push(stop)
                if done.records:
                    log.info("feed: %d record(s) in %d batch(es) sent, cursor %s", done.records,
                             done.batches, done.cursor)
            except FeedRefused as exc:
                log.error("feed stopped: %s refused a batch (%s); fix it and restart the hub or run "
                          "`hall-hub feed push`", self.feed.url, exc)
                return
            except Exception:  # the store unavailable, a bad token file: try again later
                log.exception("feed: push failed; trying again in %.0f s", self.feed.interval_seconds)
            stop.wait(self.feed.interval_seconds)

    def push(self, stop: threading.Event | None = None, attempts: int | None = None) -> Pushed:
        """Send every pending batch. `attempts`: tries per batch before FeedUnavailable (None: until
        it goes or `stop` is set). Raises FeedRefused on a permanent refusal."""
        stop = stop or threading.Event()
        batches = records = 0
        while True:
            stored, since_ref = stored_cursor(self.store, self.config.hall)
            # entries a page passed without a record are not read again; the batch still says it
            # follows the stored cursor (what is between gave no record)
            page = ratings_page(self.config, self.store, max(stored, self._passed), self.feed.batch,
                                self.store.clock.now())
            if not page.records:
                self._passed = page.cursor
                return Pushed(batches, records, stored)
            page, since = replace(page, since=stored), stored
            if not self._deliver(page, stop, attempts):
                return Pushed(batches, records, since, stopped=True)
            try:
                self.store.append_after(SENT_KIND, {"cursor": str(page.cursor), "since": str(since),
                                                    "count": len(page.records), "url": self.feed.url},
                                        str(page.cursor), since_ref)
            except StaleRef as exc:  # another pusher (`feed push` beside the daemon) moved it
                log.warning("feed: batch after %s sent, but %s; going on from the log's cursor", since, exc)
                continue
            batches, records = batches + 1, records + len(page.records)

    def _deliver(self, page: Page, stop: threading.Event, attempts: int | None) -> bool:
        """POST the batch until a 2xx (True) or `stop` (False); FeedUnavailable after `attempts`."""
        fmt = province_format(self.feed.province)
        body = json.dumps({"hall": self.config.hall, "since": str(page.since), "cursor": str(page.cursor),
                           "records": [fmt.record(r) for r in page.records]},
                          ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        delay, tries = self.feed.backoff_seconds, 0
        while True:
            headers = {"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": str(page.cursor)}
            token = self.feed.bearer()
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            wait = delay
            try:
                answer = self.transport.post(self.feed.url, body, headers, self.feed.timeout_seconds)
            except FeedUnavailable as exc:
                why = str(exc)
            else:
                if 200 <= answer.status < 300:
                    return True
                if 400 <= answer.status < 500 and answer.status not in RETRYABLE_4XX:
                    self._refused(page, answer)
                why = f"HTTP {answer.status} {answer.text[:100]}".strip()
                wait = max(delay, answer.retry_after or 0.0)
            tries += 1
            if attempts is not None and tries >= attempts:
                raise FeedUnavailable(f"{self.feed.url}: {why} ({tries} tries; the next push resends "
                                      f"the batch after {page.since})")
            wait = min(wait, self.feed.backoff_max_seconds)
            log.warning("feed: batch after %s not taken (%s); again in %.1f s", page.since, why, wait)
            if stop.wait(wait):
                return False
            delay = min(delay * 2, self.feed.backoff_max_seconds)

    def _refused(self, page: Page, answer: Answer) -> None:
        entry: AuditEntry = self.store.append(REFUSED_KIND, {
            "status": answer.status, "text": answer.text[:200], "since": str(page.since),
            "count": len(page.records), "url": self.feed.url}, str(page.since))
        log.error("feed: %s refused the batch after %s: HTTP %d (log entry #%d)", self.feed.url,
                  page.since, answer.status, entry.seq)
        raise FeedRefused(answer.status, answer.text[:200])
