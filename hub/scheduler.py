"""The hub's scheduler (APScheduler 3.x): time-based rules on the injected clock.

One interval job checks, at the hall's current time: late returns, unattended windows, absences past
the threshold, misuse and unattended ratings, overdue follow-up cases and complaints (from an index
kept in memory, hub/overdue_index.py), and devices gone offline; each new finding is appended once
to the audit log with what it was derived from. The same job performs the daily close (with the
purge of face snapshots past `[face] keep_snapshot_days`) and, after the last day of a month, writes
the monthly summary. With a ScaledClock the checks follow simulated hall time; the job period itself
is real time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from hub.config import HubConfig
from hub.domain import Finding
from hub.hall import day_findings, hall_day
from hub.monthly import digest, write_month
from hub.overdue_index import OverdueIndex
from hub.rules.attendance import is_workday
from hub.store.snapshots import purge_snapshots
from hub.store.store import Store
from wire.clock import Clock
from wire.envelope import format_ts

log = logging.getLogger(__name__)

DeviceSeen = Callable[[], dict[str, tuple[float, bool]]]  # device -> (monotonic last seen, online)


def finding_key(finding: Finding) -> str:
    detail = finding.detail
    who = str(detail.get("case") or detail.get("complaint") or finding.staff or finding.window
              or detail.get("device"))
    return f"{finding.kind}:{who}:{finding.start.isoformat(timespec='seconds')}"[:64]


def finding_data(finding: Finding) -> dict[str, Any]:
    return {
        "kind": finding.kind,
        "window": finding.window,
        "staff": finding.staff,
        "start": format_ts(finding.start),
        "end": format_ts(finding.end) if finding.end else None,
        "detail": finding.detail,
        "sources": list(finding.sources),
    }


class HallScheduler:
    def __init__(self, config: HubConfig, store: Store, clock: Clock, devices_seen: DeviceSeen,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.config, self.store, self.clock = config, store, clock
        self._devices_seen = devices_seen
        self._monotonic = monotonic
        self._started = monotonic()
        self._lock = threading.Lock()
        self._recorded = {e.ref for e in store.entries("finding") if e.ref}
        self._closed_days = {str(e.data.get("date")) for e in store.entries("daily_close")}
        self._reported_months = {str(e.data.get("month")) for e in store.entries("monthly_report")}
        self._offline: set[str] = set()
        self._overdue = OverdueIndex(config, store)  # built at the first pass, then read incrementally
        self._scheduler = BackgroundScheduler(timezone=config.tz)

    def start(self) -> None:
        self._scheduler.add_job(self.check, "interval", seconds=self.config.alerts.check_seconds,
                                id="hall-checks", max_instances=1, coalesce=True)
        self._scheduler.start()

    def shutdown(self) -> None:
        self._scheduler.shutdown(wait=True)

    def check(self) -> list[Finding]:
        """One pass of every time-based rule; returns the findings recorded now."""
        with self._lock:
            now = self.clock.now()
            today = now.astimezone(self.config.tz).date()
            new = [f for f in self.findings(today, now) if self._record(f)]
            new.extend(self._devices(now))
            self._daily_close(today, now)
            return new

    def findings(self, today: date, now: datetime) -> list[Finding]:
        """What one pass finds (nothing recorded): today's rules, and the overdue cases and complaints
        from the index, brought up to date with the log entries appended since the last pass."""
        self._overdue.refresh(now)
        return day_findings(self.config, self.store, today, now, self._overdue.findings)

    def _record(self, finding: Finding) -> bool:
        key = finding_key(finding)
        if key in self._recorded:
            return False
        self._recorded.add(key)
        self.store.append("finding", finding_data(finding), ref=key)
        log.warning("finding %s", key)
        return True

    def _devices(self, now: datetime) -> list[Finding]:
        recorded = []
        limit = self.config.alerts.offline_after_seconds
        seen = self._devices_seen()
        for device in self.config.devices:
            last, online = seen.get(device.id, (None, False))
            if last is None:  # never heard of since the hub started: give it the same grace
                offline = self._monotonic() - self._started > limit
            else:
                offline = not online or self._monotonic() - last > limit
            if offline and device.id not in self._offline:
                self._offline.add(device.id)
                finding = Finding("device_offline", None, None, now, None,
                                  {"device": device.id, "last_will": last is not None and not online}, ())
                if self._record(finding):
                    recorded.append(finding)
            elif not offline:
                self._offline.discard(device.id)
        return recorded

    def _daily_close(self, today: date, now: datetime) -> None:
        """Close yesterday (and today once past the close time); after a month's last day, report."""
        candidates = [today - timedelta(days=1)]
        if now.astimezone(self.config.tz).time() >= self.config.alerts.daily_close:
            candidates.append(today)
        for day in candidates:
            if day.isoformat() in self._closed_days:
                continue
            self._closed_days.add(day.isoformat())
            summary = hall_day(self.config, self.store, day, now)
            statuses: dict[str, int] = {}
            for row in summary.attendance:
                statuses[row.status] = statuses.get(row.status, 0) + 1
            self.store.append_with_head("daily_close", {
                "date": day.isoformat(),
                "workday": is_workday(day, self.config.schedule.to_domain()),
                "attendance": statuses,
                "ratings": len(summary.ratings),
                "findings": len(summary.findings),
            }, ref=day.isoformat())
            if (day + timedelta(days=1)).day == 1:
                self._month(day.strftime("%Y-%m"), now)
            self._purge_snapshots(now)

    def _purge_snapshots(self, now: datetime) -> None:
        keep = self.config.face.keep_snapshot_days
        entry = purge_snapshots(self.store, now - timedelta(days=keep), keep)
        if entry is not None:
            log.info("%d face snapshot(s) older than %d days purged (log entry %d)", entry.data["count"],
                     keep, entry.seq)

    def _month(self, month: str, now: datetime) -> None:
        if month in self._reported_months:
            return
        self._reported_months.add(month)
        paths = write_month(self.config, self.store, month, self.config.reports.dir, now)
        self.store.append("monthly_report", {
            "month": month, "files": {p.name: digest(p) for p in paths},
        }, ref=month)
        log.info("monthly summary %s written to %s", month, self.config.reports.dir)
