"""The roster and settings in force on a past day, from the audit log's `roster` entries.

`hall-hub roster apply` logs the roster (hub/roster_log.py; the daemon logs only the first roster
of a new store, and refuses to start with another than the last logged): staff with their desks,
windows, devices, the schedule, and the settings a report is computed with. A report of a past
month reads them back here, so that editing hub.toml today (a new staff member, another grace
period) does not rewrite what a past month was.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from pydantic import ValidationError

from hub.config import HubConfig, ScheduleConfig, StaffConfig, WindowConfig
from hub.store.store import Store

log = logging.getLogger(__name__)

ROSTER_KIND = "roster"
SETTING_SECTIONS = ("ratings", "cases", "complaints")
ALERT_KEYS = ("late_return_grace_minutes", "unattended_min_minutes")


def roster_record(config: HubConfig) -> dict[str, Any]:
    """What a `roster` entry holds: staff with their desks, windows, devices, the schedule, and the
    settings the rules and reports read (`settings`: ratings, cases, complaints, the alert
    thresholds, the reports' bottom_marked); `operators` (their public keys) when any is configured,
    so a roster logged before operators existed still equals one configured without."""
    keys = [o.model_dump(mode="json") for o in config.operators]
    return ({"operators": keys} if keys else {}) | {
        "staff": [vars(m) | {"cards": list(m.cards)} for m in config.roster()],
        "windows": [w.model_dump(mode="json") for w in config.windows],
        "devices": config.device_keys(),
        "schedule": config.schedule.model_dump(mode="json"),
        "settings": {
            **{name: getattr(config, name).model_dump(mode="json") for name in SETTING_SECTIONS},
            "alerts": {key: getattr(config.alerts, key) for key in ALERT_KEYS},
            "reports": {"bottom_marked": config.reports.bottom_marked},
        },
    }


def config_from_record(config: HubConfig, data: dict[str, Any]) -> HubConfig:
    """`config` with the roster, windows, schedule and settings of a logged `roster` entry; a
    section the entry does not hold (an entry from before it was logged) stays as configured now.
    Raises ValueError for an entry that is not a roster."""
    try:
        staff = [StaffConfig(id=s["id"], name=s["name"], window=s.get("window", ""),
                             desk=s.get("desk") or None, cards=list(s.get("cards") or ()))
                 for s in data["staff"]]
        update: dict[str, Any] = {
            "staff": staff,
            "windows": [WindowConfig.model_validate(w) for w in data.get("windows", [])],
        }
        if "schedule" in data:
            # strict sections take times and dates as text in JSON mode only
            update["schedule"] = ScheduleConfig.model_validate_json(json.dumps(data["schedule"]))
        settings = data.get("settings") or {}
        for name in (*SETTING_SECTIONS, "alerts", "reports"):
            if name in settings:
                section = getattr(config, name)
                update[name] = section.model_copy(update=settings[name])
    except (KeyError, TypeError, ValidationError) as exc:
        raise ValueError(f"not a roster entry: {exc}") from exc
    return config.model_copy(update=update)


@dataclass(frozen=True)
class RosterVersion:
    """A roster in force from `since` (None: the current config, no entry logged before)."""

    seq: int | None
    since: datetime | None
    config: HubConfig


class RosterHistory:
    """The logged rosters in order; `on(day)` is the one in force at the end of that hall day."""

    def __init__(self, config: HubConfig, store: Store) -> None:
        self.current = config
        self.versions: list[RosterVersion] = []
        for entry in store.entries(ROSTER_KIND):
            try:
                then = config_from_record(config, entry.data)
            except ValueError as exc:
                log.warning("roster entry #%d left out of reports: %s", entry.seq, exc)
                continue
            self.versions.append(RosterVersion(entry.seq, entry.at, then))

    def _end(self, day: date) -> datetime:
        return datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.current.tz)

    def at(self, moment: datetime) -> RosterVersion:
        """The last roster logged before `moment`; before the first one logged, that first one (the
        daemon logs it when it first starts: the earliest roster known); the current config only
        when the log holds none."""
        found = self.versions[0] if self.versions else RosterVersion(None, None, self.current)
        for version in self.versions:
            if version.since is not None and version.since < moment:
                found = version
        return found

    def on(self, day: date) -> RosterVersion:
        return self.at(self._end(day))

    def during(self, first: date, last: date) -> list[RosterVersion]:
        """The rosters in force at some time from the start of `first` to the end of `last`."""
        start = datetime.combine(first, time(0), tzinfo=self.current.tz)
        found = [self.at(start)]
        found += [v for v in self.versions
                  if v.since is not None and start <= v.since < self._end(last) and v is not found[0]]
        return found
