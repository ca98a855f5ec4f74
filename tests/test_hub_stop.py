"""A stopping hub stores what paho already handed over, within STOP_DRAIN_S; a larger backlog (a hall
handed over in a flood) is left to the edges' resends instead of holding the stop (and the hall's
new owner) back."""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from hub import config as hub_config
from hub import service as hub_service
from hub.inbox import Message
from hub.service import HubService
from hub.store.store import Store
from tests.mqtt_broker import free_port
from wire.clock import SystemClock
from wire.envelope import format_ts, generate_keypair, load_private_key, seal

TZ = ZoneInfo("Asia/Shanghai")
HUB, DEVICE = generate_keypair(), generate_keypair()
TOPIC = "hall/v1/h1/entrance/evt/clock"


def stopped_hub(tmp_path: Path, events: int, ingest: str = "",
                forged: Collection[int] = ()) -> tuple[HubService, Store]:
    """A hub whose broker is not there (it only keeps trying), its inbox holding `events` events, those
    of the seqs `forged` signed by another key; `ingest`: lines of its [ingest] section."""
    path = tmp_path / "hub.toml"
    path.write_text(
        f'hall = "h1"\nprivate_key = "{HUB.private_hex}"\n[broker]\nurl = "mqtt://127.0.0.1:{free_port()}"\n'
        f'[store]\nurl = "sqlite:///hub.db"\n[ingest]\n{ingest}'
        f'[[devices]]\nid = "entrance"\npublic_key = "{DEVICE.public_hex}"\n',
        encoding="utf-8")
    config = hub_config.load(path)
    clock = SystemClock(TZ)
    store = Store(config.store.url, clock)
    service = HubService(config, clock, store)
    key, forger = load_private_key(DEVICE.private_hex), load_private_key(generate_keypair().private_hex)
    for seq in range(1, events + 1):
        raw = seal(forger if seq in forged else key, hall="h1", device="entrance", seq=seq,
                   ts=format_ts(clock.now()), type="clock", body={"method": "card", "card": f"0A{seq:08X}"},
                   epoch="0123456789abcdef").raw
        service._inbox.put(Message(TOPIC, raw, clock.now()))
    return service, store


def test_a_stopping_hub_stores_what_its_inbox_holds(tmp_path: Path) -> None:
    service, store = stopped_hub(tmp_path, 450)
    stop = threading.Event()
    stop.set()
    try:
        service.run(stop)
        assert store.event_count() == 450
    finally:
        store.close()


def test_a_backlog_past_the_drain_budget_is_left_to_the_edges(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    service, store = stopped_hub(tmp_path, 300)
    monkeypatch.setattr(hub_service, "STOP_DRAIN_S", 0.0)
    stop = threading.Event()
    stop.set()
    try:
        with caplog.at_level(logging.WARNING, logger="hub.service"):
            service.run(stop)
        assert store.event_count() == 0
        assert "stopping: 300 message(s) not stored within 0 s, left to the edges' resends" in caplog.text
    finally:
        store.close()
