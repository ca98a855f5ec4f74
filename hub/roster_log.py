"""The roster in hub.toml against the one in the log: `hall-hub roster apply` logs a change, the
daemon refuses to start with a roster that is not the last logged, `log verify` names a difference.

The first start of a store whose log holds no roster yet logs hub.toml's as the initial roster,
authored by the hub itself (`via: "hub"`); every later change is a person's entry (`--by`, and with
`--sign-with` the operator's signature).
"""

from __future__ import annotations

import json
from typing import Any

from hub.config import HubConfig
from hub.domain import AuditEntry
from hub.provenance import Provenance, hub_author
from hub.roster_history import ROSTER_KIND, roster_record
from hub.store.store import Store
from wire.envelope import canonical
from wire.provenance import AUTHOR, SIGNATURE

APPLY_HINT = "hall-hub roster apply --config {config} --by NAME [--sign-with FILE]"


class RosterNotLogged(ValueError):
    """hub.toml's roster differs from the last one logged; the message says how and what to run."""


def current_record(config: HubConfig) -> dict[str, Any]:
    """hub.toml's roster as a `roster` entry holds it (through JSON, as read back from the log)."""
    loaded: dict[str, Any] = json.loads(canonical(roster_record(config)))
    return loaded


def logged_roster(store: Store) -> AuditEntry | None:
    """The last `roster` entry that verifies where it stands (None: the log holds none)."""
    found = None
    for entry in store.entries(ROSTER_KIND):
        found = entry
    return found


def content(data: dict[str, Any]) -> dict[str, Any]:
    """A roster entry's roster: without who logged it."""
    return {k: v for k, v in data.items() if k not in (AUTHOR, SIGNATURE)}


def differences(logged: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs from the logged roster to hub.toml's, in words (empty: the same)."""
    found: list[str] = []
    for section, key in (("staff", "id"), ("windows", "id"), ("operators", "name")):
        found += _by_id(section, key, logged.get(section) or [], now.get(section) or [])
    before, after = logged.get("devices") or {}, now.get("devices") or {}
    found += [f"设备新增 device added: {d}" for d in sorted(set(after) - set(before))]
    found += [f"设备移除 device removed: {d}" for d in sorted(set(before) - set(after))]
    found += [f"设备公钥变更 device key changed: {d}" for d in sorted(set(before) & set(after))
              if before[d] != after[d]]
    if logged.get("schedule") != now.get("schedule"):
        keys = _changed_keys(logged.get("schedule") or {}, now.get("schedule") or {})
        found.append(f"作息变更 the schedule changed: {', '.join(keys)}")
    settings_before, settings_after = logged.get("settings") or {}, now.get("settings") or {}
    for name in sorted(set(settings_before) | set(settings_after)):
        if settings_before.get(name) != settings_after.get(name):
            keys = _changed_keys(settings_before.get(name) or {}, settings_after.get(name) or {})
            found.append(f"设置变更 settings [{name}] changed: {', '.join(keys)}")
    known = {"staff", "windows", "operators", "devices", "schedule", "settings"}
    for other in sorted((set(logged) | set(now)) - known):
        if logged.get(other) != now.get(other):
            found.append(f"{other} changed")
    return found


def _by_id(section: str, key: str, before: list[Any], after: list[Any]) -> list[str]:
    old = {str(item.get(key)): item for item in before if isinstance(item, dict)}
    new = {str(item.get(key)): item for item in after if isinstance(item, dict)}
    zh = {"staff": "人员", "windows": "窗口", "operators": "操作员"}[section]
    found = [f"{zh}新增 {section} added: {i}" for i in sorted(set(new) - set(old))]
    found += [f"{zh}移除 {section} removed: {i}" for i in sorted(set(old) - set(new))]
    found += [f"{zh}变更 {section} changed: {i} ({', '.join(_changed_keys(old[i], new[i]))})"
              for i in sorted(set(old) & set(new)) if old[i] != new[i]]
    if not found and before != after:
        found.append(f"{zh}顺序变更 {section} reordered")
    return found


def _changed_keys(before: Any, after: Any) -> list[str]:
    if not isinstance(before, dict) or not isinstance(after, dict):
        return ["(whole section)"]
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def unlogged_change(config: HubConfig, store: Store) -> tuple[AuditEntry, list[str]] | None:
    """The last logged roster and how hub.toml differs from it; None when they are the same or the
    log holds no roster."""
    last = logged_roster(store)
    if last is None:
        return None
    found = differences(content(last.data), current_record(config))
    return (last, found) if found else None


def refusal(config_path: str, last: AuditEntry, found: list[str]) -> str:
    return (f"名册未记入日志, 拒绝启动 refused to start: the roster in hub.toml is not the one in the log "
            f"(entry #{last.seq}): {'; '.join(found)}. 先记录变更 log the change first: "
            + APPLY_HINT.format(config=config_path))


def ensure_logged(config: HubConfig, store: Store, config_path: str = "hub.toml") -> None:
    """At the daemon's start: the initial roster logged by the hub when the log holds none; raises
    RosterNotLogged when hub.toml's differs from the last logged."""
    if logged_roster(store) is None:
        store.authored(Provenance(hub_author())).append(ROSTER_KIND, current_record(config))
        return
    change = unlogged_change(config, store)
    if change is not None:
        raise RosterNotLogged(refusal(config_path, *change))


def apply_roster(config: HubConfig, store: Store) -> tuple[AuditEntry | None, list[str]]:
    """`roster apply`: log hub.toml's roster (with the author and signature `store` appends as),
    unless it is the last logged already: (the new entry or None, what changed)."""
    last = logged_roster(store)
    now = current_record(config)
    if last is None:
        return store.append(ROSTER_KIND, now), ["首份名册 the first roster"]
    found = differences(content(last.data), now)
    if not found:
        return None, []
    return store.append(ROSTER_KIND, now), found


def config_problem(config: HubConfig, store: Store) -> str | None:
    """For `log verify`: how the roster in hub.toml is not the one the log says is in force."""
    change = unlogged_change(config, store)
    if change is None:
        return None
    last, found = change
    return (f"名册与日志不符 roster in hub.toml is not the one in the log (entry #{last.seq}): "
            f"{'; '.join(found)}")
