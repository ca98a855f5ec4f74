"""The signature checks in a child process (hub/sigcheck.py): the child's answers are the hub's own,
a child that dies or hangs costs no event (the batch is checked in the hub's thread), and the hub's
pipeline stores every batch, in order, with what fails its check quarantined."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from hub import config as hub_config
from hub import sigcheck
from hub.inbox import Message
from hub.service import HubService
from hub.sigcheck import Check, SignatureChecker, holds
from hub.store.store import Store
from tests.mqtt_broker import free_port
from wire.clock import SystemClock
from wire.envelope import format_ts, generate_keypair, load_private_key, seal

TZ = ZoneInfo("Asia/Shanghai")
HUB, DEVICE, OTHER = generate_keypair(), generate_keypair(), generate_keypair()
TOPIC = "hall/v1/h1/entrance/evt/clock"


def checks(count: int) -> list[Check]:
    """Every third signed by another key, every fifth with its message changed after signing."""
    good, other = load_private_key(DEVICE.private_hex), load_private_key(OTHER.private_hex)
    public = bytes.fromhex(DEVICE.public_hex)
    made = []
    for n in range(count):
        message = f'{{"n":{n},"pad":"{"x" * (n % 700)}"}}'.encode()
        signature = (other if n % 3 == 0 else good).sign(message).signature
        made.append(Check(public, signature, message + b" " if n % 5 == 0 else message))
    return made


def test_the_child_answers_as_the_hub_would() -> None:
    checker = SignatureChecker()
    checker.start()
    try:
        batches = [checks(200), checks(7), checks(1)]
        tickets = [checker.submit(batch) for batch in batches]  # handed over before any answer is read
        answers = [checker.answers(ticket) for ticket in tickets]
    finally:
        checker.close()
    assert answers == [[holds(check) for check in batch] for batch in batches]
    assert True in answers[0] and False in answers[0]
    assert checker.checked_here == 0  # all of them in the child


def test_a_child_killed_mid_batch_costs_nothing_and_is_started_again(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(sigcheck, "RESTART_S", 0.0)
    checker = SignatureChecker()
    checker.start()
    try:
        batch = checks(50)
        ticket = checker.submit(batch)
        assert ticket.child is not None
        os.kill(ticket.child.pid, signal.SIGKILL)
        ticket.child.wait()
        with caplog.at_level(logging.ERROR, logger="hub.sigcheck"):
            assert checker.answers(ticket) == [holds(check) for check in batch]
        assert checker.checked_here == 50
        assert "the signature checker ended (exit code -9)" in caplog.text
        again = checker.submit(batch)  # a new child
        assert again.child is not None and again.child.pid != ticket.child.pid
        assert checker.answers(again) == [holds(check) for check in batch]
        assert checker.checked_here == 50
    finally:
        checker.close()


def test_a_child_that_does_not_answer_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sigcheck, "ANSWER_WAIT_S", 0.5)
    checker = SignatureChecker()
    checker.start()
    try:
        batch = checks(20)
        ticket = checker.submit(batch)
        assert ticket.child is not None
        os.kill(ticket.child.pid, signal.SIGSTOP)  # alive, silent
        assert checker.answers(ticket) == [holds(check) for check in batch]
        assert ticket.child.poll() is not None  # killed, not left behind
        assert checker.checked_here == 20
    finally:
        checker.close()


def test_without_a_child_the_hub_checks_in_its_own_thread() -> None:
    checker = SignatureChecker()  # never started: [ingest] signature_process = false
    batch = checks(10)
    ticket = checker.submit(batch)
    assert ticket.child is None
    assert checker.answers(ticket) == [holds(check) for check in batch]
    assert checker.checked_here == 10


@pytest.mark.parametrize("in_child", [True, False])
def test_the_hub_stores_each_batch_in_order_and_quarantines_a_forgery(tmp_path: Path, in_child: bool) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(
        f'hall = "h1"\nprivate_key = "{HUB.private_hex}"\n[broker]\nurl = "mqtt://127.0.0.1:{free_port()}"\n'
        f'[store]\nurl = "sqlite:///hub.db"\n[ingest]\nsignature_process = {str(in_child).lower()}\n'
        f'[[devices]]\nid = "entrance"\npublic_key = "{DEVICE.public_hex}"\n', encoding="utf-8")
    config = hub_config.load(path)
    clock = SystemClock(TZ)
    store = Store(config.store.url, clock)
    service = HubService(config, clock, store)
    key, forger = load_private_key(DEVICE.private_hex), load_private_key(OTHER.private_hex)
    for seq in range(1, 451):
        raw = seal(forger if seq == 300 else key, hall="h1", device="entrance", seq=seq,
                   ts=format_ts(clock.now()), type="clock", body={"method": "card", "card": f"0A{seq:08X}"},
                   epoch="0123456789abcdef").raw
        service._inbox.put(Message(TOPIC, raw, clock.now()))
    stop = threading.Event()
    stop.set()  # run starts the checker, then stores the inbox (three batches) and stops
    try:
        service.run(stop)
        accepted = [seq for _hall, _device, seq, _epoch in store.device_history()]
        assert accepted == [seq for seq in range(1, 451) if seq != 300]  # in the order received
        assert [row.reason for row in store.quarantined()] == ["bad_signature"]
        assert service.checker.checked_here == (0 if in_child else 450)
    finally:
        store.close()
