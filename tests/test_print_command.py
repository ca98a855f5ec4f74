"""The `print` command through the edge agent's own inbound path (PROTOCOL.md 2.8): a malformed one
is answered ok=false at once; a good one is not answered until its printer thread printed it, then
ok=true, once. The printer is the simulator on a real TCP port."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from device_sims.printer import PrinterSim
from edge_agent import config as edge_config
from edge_agent.agent import EdgeAgent
from edge_agent.link import Inbound
from tests.hall_harness import wait_for
from wire.clock import FixedClock
from wire.envelope import format_ts, generate_keypair, load_private_key, seal

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 24, 8, 30, tzinfo=TZ)
DEVICE, HUB = generate_keypair(), generate_keypair()
TOPIC = "hall/v1/h1/entrance/cmd/print"


def command(body: dict[str, Any], seq: int) -> tuple[str, bytes]:
    envelope = seal(load_private_key(HUB.private_hex), hall="h1", device="entrance", seq=seq,
                    ts=format_ts(NOW), type="print", body=body)
    return envelope.id, envelope.raw


def acks(agent: EdgeAgent) -> list[dict[str, Any]]:
    return [json.loads(item.payload)["body"] for item in agent.outbox.pending() if item.type == "ack"]


def test_print_commands_are_answered_once_printed(tmp_path: Path) -> None:
    with PrinterSim(tmp_path / "paper", columns=32) as sim:
        path = tmp_path / "edge.toml"
        path.write_text(
            f'hall = "h1"\ndevice = "entrance"\nprivate_key = "{DEVICE.private_hex}"\n'
            f'hub_public_key = "{HUB.public_hex}"\n[outbox]\npath = "outbox.db"\n'
            f'[[units]]\nid = "printer"\nkind = "printer"\nconnection = "{sim.url}"\ncolumns = 32\n',
            encoding="utf-8")
        agent = EdgeAgent(edge_config.load(path), FixedClock(NOW))
        assert agent.printers is not None
        bad_id, bad = command({"unit": "printer", "title": "x", "lines": "不是列表"}, 1)
        none_id, none = command({"unit": "drawer", "title": "x"}, 2)
        good_id, good = command({"unit": "printer", "title": "回执", "lines": ["评价：★★★★★"], "qr": "Q1"}, 3)
        for payload in (bad, none, good, good):  # the good one delivered twice (QoS 1)
            agent.hub.handle(Inbound(TOPIC, payload, False))
        assert [(a["cmd"], a["ok"]) for a in acks(agent)] == [(bad_id, False), (none_id, False)]
        assert "lines" in acks(agent)[0]["error"] and "no printer unit 'drawer'" in acks(agent)[1]["error"]
        assert agent.printers.queue.count() == 1 and sim.receipts == []
        stop = threading.Event()
        unit = agent.config.printer_units()[0]
        thread = threading.Thread(target=agent.printers.run_unit, args=(unit, stop))
        thread.start()
        try:
            wait_for(lambda: len(acks(agent)) == 3, 20, "the print ack")
        finally:
            stop.set()
            agent.printers.wake_all()
            thread.join(10)
        assert acks(agent)[2] == {"cmd": good_id, "ok": True, "error": None}
        assert [r.lines()[:2] for r in sim.receipts] == [[" " * 14 + "回执", "─" * 16]]
        agent.printers.queue.close()
        agent.outbox.close()
