"""The events' decoder in a child process (hub/decoder_process.py): its answers are the hub's own
decoder's, a child that dies, hangs or answers wrongly costs no event (the batch is decoded in the
hub's thread), and the hub's pipeline stores every batch, in order, with what is refused quarantined."""

from __future__ import annotations

import logging
import os
import signal
import threading
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from hub import config as hub_config
from hub import decoder_process
from hub.decoder_process import DecoderProcess, read_answers
from hub.inbox import Message
from hub.ingest import Decoder
from tests.test_hub_stop import stopped_hub
from wire.envelope import format_ts, generate_keypair, load_private_key, load_public_key, seal

TZ = ZoneInfo("Asia/Shanghai")
HUB, DEVICE, OTHER = generate_keypair(), generate_keypair(), generate_keypair()
TOPIC = "hall/v1/h1/entrance/evt/clock"
NOW = datetime(2026, 11, 24, 8, 30, 15, 123456, tzinfo=TZ)


def decoder() -> Decoder:
    return Decoder("h1", "hall/v1", {"entrance": load_public_key(DEVICE.public_hex)}, 4096)


def messages(count: int) -> list[Message]:
    """Events, with one of each kind of refusal among them: another key's signature, a changed byte,
    an unknown device, a topic of another device, not JSON, oversize, a body of the wrong shape."""
    key, other = load_private_key(DEVICE.private_hex), load_private_key(OTHER.private_hex)

    def sealed(seq: int, signer: object = key, device: str = "entrance", body: object = None) -> bytes:
        return seal(signer, hall="h1", device=device, seq=seq, ts=format_ts(NOW), type="clock",  # type: ignore[arg-type]
                    body=body or {"method": "card", "card": f"0A{seq:08X}"}, epoch="0123456789abcdef").raw

    made = []
    for n in range(count):
        topic, payload = TOPIC, sealed(n + 1)
        match n % 9:
            case 1:
                payload = sealed(n + 1, other)
            case 2:
                payload = payload.replace(b'"card":"0A', b'"card":"0B')
            case 3:
                topic, payload = "hall/v1/h1/stranger/evt/clock", sealed(n + 1, device="stranger")
            case 4:
                topic = "hall/v1/h1/window1/evt/clock"
            case 5:
                payload = b"\xff not json \"\\"
            case 6:
                payload = b" " * 5000
            case 7:
                payload = sealed(n + 1, body={"method": "card"})
        made.append(Message(topic, payload, NOW))
    return made


def test_the_child_decodes_as_the_hub_would() -> None:
    decoding = DecoderProcess(decoder())
    decoding.start()
    try:
        batches = [messages(200), messages(9), messages(1)]
        tickets = [decoding.submit(batch) for batch in batches]  # all handed over before any answer
        answers = [decoding.results(ticket) for ticket in tickets]
    finally:
        decoding.close()
    here = decoder()
    assert answers == [[here.decode(m.topic, m.payload, m.received_at) for m in batch] for batch in batches]
    reasons = {getattr(item, "reason", "stored") for item in answers[0]}
    assert reasons == {"stored", "bad_signature", "unknown_device", "topic_mismatch", "malformed", "oversize"}
    assert decoding.decoded_here == 0  # every one of them in the child


def test_an_event_read_again_is_the_event_the_decoder_made() -> None:
    batch = messages(1)
    (event,) = read_answers(batch, b"\x00")
    assert event == decoder().decode(TOPIC, batch[0].payload, NOW)
    assert event.ts_text == format_ts(NOW) and event.ts.utcoffset() == NOW.utcoffset()  # type: ignore[union-attr]


def test_the_child_outlives_a_sigterm_to_the_group_and_ends_with_the_pipe() -> None:
    decoding = DecoderProcess(decoder())
    decoding.start()
    batch = messages(9)
    assert len(decoding.results(decoding.submit(batch))) == 9  # the child is up (its handlers set)
    ticket = decoding.submit(batch)
    assert ticket.child is not None
    os.kill(ticket.child.pid, signal.SIGTERM)  # what systemd sends every process of the service
    try:
        assert decoding.results(ticket) == [decoder().decode(m.topic, m.payload, NOW) for m in batch]
        assert decoding.decoded_here == 0 and ticket.child.poll() is None
    finally:
        decoding.close()
    assert ticket.child.returncode == 0


def test_a_child_killed_mid_batch_costs_nothing_and_is_started_again(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(decoder_process, "RESTART_S", 0.0)
    decoding = DecoderProcess(decoder())
    decoding.start()
    here = decoder()
    try:
        batch = messages(50)
        ticket = decoding.submit(batch)
        assert ticket.child is not None
        os.kill(ticket.child.pid, signal.SIGKILL)
        ticket.child.wait()
        with caplog.at_level(logging.ERROR, logger="hub.decoder_process"):
            assert decoding.results(ticket) == [here.decode(m.topic, m.payload, NOW) for m in batch]
        assert decoding.decoded_here == 50
        assert "the decoder process ended (exit code -9)" in caplog.text
        again = decoding.submit(batch)  # a new child
        assert again.child is not None and again.child.pid != ticket.child.pid
        assert decoding.results(again) == [here.decode(m.topic, m.payload, NOW) for m in batch]
        assert decoding.decoded_here == 50
    finally:
        decoding.close()


def test_a_child_that_does_not_answer_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decoder_process, "ANSWER_WAIT_S", 0.5)
    decoding = DecoderProcess(decoder())
    decoding.start()
    try:
        batch = messages(20)
        ticket = decoding.submit(batch)
        assert ticket.child is not None
        os.kill(ticket.child.pid, signal.SIGSTOP)  # alive, silent
        assert len(decoding.results(ticket)) == 20
        assert ticket.child.poll() is not None  # killed, not left behind
        assert decoding.decoded_here == 20
    finally:
        decoding.close()


def test_a_wrong_answer_is_not_believed() -> None:
    batch = messages(3)
    with pytest.raises(ValueError, match="an answer of 4 bytes for 3 events read 3"):
        read_answers(batch, b"\x00\x00\x00\x00")
    with pytest.raises(IndexError):
        read_answers(batch, b"\x00\x00")


def test_without_a_child_the_hub_decodes_in_its_own_thread() -> None:
    decoding = DecoderProcess(decoder())  # never started: [ingest] decode_process = false
    batch = messages(10)
    ticket = decoding.submit(batch)
    assert ticket.child is None
    assert decoding.results(ticket) == [decoder().decode(m.topic, m.payload, NOW) for m in batch]
    assert decoding.decoded_here == 10


@pytest.mark.parametrize("in_child", [True, False])
def test_the_hub_stores_each_batch_in_order_and_quarantines_a_forgery(tmp_path: Path, in_child: bool) -> None:
    service, store = stopped_hub(tmp_path, 450, f"decode_process = {str(in_child).lower()}\n", forged={300})
    stop = threading.Event()
    stop.set()  # run starts the decoder process, then stores the inbox (three batches) and stops
    try:
        service.run(stop)
        accepted = [seq for _hall, _device, seq, _epoch in store.device_history()]
        assert accepted == [seq for seq in range(1, 451) if seq != 300]  # in the order received
        assert [row.reason for row in store.quarantined()] == ["bad_signature"]
        assert service.decoding.decoded_here == (0 if in_child else 450)
    finally:
        store.close()


@pytest.mark.parametrize(("ingest", "expected"), [("", False), ("decode_process = true\n", True),
                                                  ("decode_process = false\n", False)])
def test_a_city_worker_decodes_in_its_thread_unless_the_hall_says(tmp_path: Path, ingest: str,
                                                                   expected: bool) -> None:
    from hub.city.worker import served_by_a_worker
    path = tmp_path / "hub.toml"
    path.write_text(f'hall = "h1"\nprivate_key = "{HUB.private_hex}"\n[ingest]\n{ingest}', encoding="utf-8")
    config = hub_config.load(path)
    assert config.ingest.decode_process is (ingest != "decode_process = false\n")  # a hall alone: a child
    assert served_by_a_worker(config).ingest.decode_process is expected
