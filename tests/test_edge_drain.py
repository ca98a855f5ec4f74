"""A hub away for days: the backlog drains in order, each reading once, through a real Mosquitto to a
plain paho subscriber standing in for the hub (it publishes the signed `committed` watermark), and
the publisher reads the backlog once, in bounded batches, never again on an idle pass."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from edge_agent import config as edge_config
from edge_agent.agent import FLUSH_BATCH, EdgeAgent
from edge_agent.outbox import Outbox, Pending
from tests.drain_harness import DEVICE, HALL, HubStandIn, drain, fill_outbox
from tests.hall_harness import wait_for
from tests.mqtt_broker import Mosquitto
from wire.clock import SystemClock
from wire.envelope import generate_keypair

pytestmark = pytest.mark.e2e


def test_a_backlog_of_20000_drains_in_order_once_the_hub_is_back(tmp_path: Path, broker: Mosquitto) -> None:
    result = drain(tmp_path / "drain", broker.port, 20_000, timeout=80)
    assert result.received == list(range(1, 20_001))  # in order, each once
    assert any(state.get("ready") is True for state in result.states)  # the retained online state
    print(f"drained {result.readings} readings in {result.seconds:.1f} s: {result.per_second:,.0f}/s")


class CountingOutbox(Outbox):
    """Notes every batch the publisher reads: (after_seq, rows returned)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reads: list[tuple[int, int]] = []

    def pending(self, after_seq: int = 0, limit: int = 500) -> list[Pending]:
        rows = super().pending(after_seq, limit)
        self.reads.append((after_seq, len(rows)))
        return rows


def test_the_backlog_is_read_once_in_bounded_batches(tmp_path: Path, broker: Mosquitto) -> None:
    edge_keys, hub_keys = generate_keypair(), generate_keypair()
    path = tmp_path / "edge.toml"
    path.write_text(
        f'hall = "{HALL}"\ndevice = "{DEVICE}"\nprivate_key = "{edge_keys.private_hex}"\n'
        f'hub_public_key = "{hub_keys.public_hex}"\n[broker]\nurl = "{broker.url}"\n'
        '[outbox]\npath = "outbox.db"\nresend_seconds = 120\n', encoding="utf-8")
    config = edge_config.load(path)
    fill_outbox(config.outbox.path, edge_keys.private_hex, 3_000)
    outbox = CountingOutbox(config.outbox.path)
    agent = EdgeAgent(config, SystemClock(ZoneInfo("Asia/Shanghai")), outbox=outbox)
    hub = HubStandIn(broker.port, hub_keys)
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), name="agent-under-test")
    thread.start()
    try:
        wait_for(lambda: outbox.size() == 0, 30, "the backlog drained")
        drained_reads = len(outbox.reads)
        time.sleep(1.5)  # idle passes
        idle = outbox.reads[drained_reads:]
    finally:
        stop.set()
        thread.join(15)
        hub.close()
    assert hub.seqs == list(range(1, 3_001))
    rows = [count for _, count in outbox.reads]
    # 500 at most a pass, each pass after what the last one handed over: nothing is read twice unless
    # paho's queue (10,000) was full mid-batch, and then only that batch's tail
    assert max(rows) == FLUSH_BATCH and sum(rows) == 3_000
    assert [after for after, count in outbox.reads if count] == list(range(0, 3_000, FLUSH_BATCH))
    assert idle and all(read == (3_000, 0) for read in idle)  # an idle pass: one index probe, no rows
