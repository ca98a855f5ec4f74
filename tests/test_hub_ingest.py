"""Hub ingest and watermarks on their own: every bad message gets its reason; seqs and gaps."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from hub import config as hub_config
from hub.domain import Quarantined, StoredEvent
from hub.ingest import Decoder
from hub.watermark import Watermarks
from wire.configfile import ConfigError, load
from wire.envelope import generate_keypair, load_private_key, load_public_key, seal

ROOT = Path(__file__).resolve().parents[1]
DEVICE = generate_keypair()
OTHER = generate_keypair()
NOW = datetime(2026, 11, 24, 8, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
TOPIC = "hall/v1/h1/entrance/evt/clock"


def decoder(max_bytes: int = 4096) -> Decoder:
    return Decoder("h1", "hall/v1", {"entrance": load_public_key(DEVICE.public_hex)}, max_bytes)


def envelope(key_hex: str = DEVICE.private_hex, **overrides: object) -> bytes:
    fields: dict[str, object] = {"hall": "h1", "device": "entrance", "seq": 1,
                                 "ts": "2026-11-24T08:29:31.120+08:00", "type": "clock",
                                 "body": {"method": "card", "card": "0A004A7B2C"}}
    fields.update(overrides)
    return seal(load_private_key(key_hex), **fields).raw  # type: ignore[arg-type]


def test_good_event_is_decoded() -> None:
    result = decoder().decode(TOPIC, envelope(), NOW)
    assert isinstance(result, StoredEvent)
    assert result.device == "entrance" and result.seq == 1 and result.body["card"] == "0A004A7B2C"
    assert result.ts.utcoffset().total_seconds() == 8 * 3600 and result.received_at == NOW


@pytest.mark.parametrize("topic, payload, reason", [
    (TOPIC, b"x" * 5000, "oversize"),
    (TOPIC, b"{oops", "malformed"),
    (TOPIC, envelope(OTHER.private_hex), "bad_signature"),
    (TOPIC, envelope().replace(b"0A004A7B2C", b"67003B51C6"), "bad_signature"),
    ("hall/v1/h1/ghost/evt/clock", envelope(device="ghost"), "unknown_device"),
    ("hall/v1/h1/entrance/evt/rating", envelope(), "topic_mismatch"),
    ("hall/v1/h2/entrance/evt/clock", envelope(), "topic_mismatch"),
    ("hall/v1/h2/entrance/evt/clock", envelope(hall="h2"), "topic_mismatch"),
    (TOPIC, envelope(body={"method": "card", "card": 12}), "malformed"),
    ("hall/v1/h1/entrance/evt/selfie", envelope(type="selfie", body={}), "malformed"),
])
def test_bad_messages_get_their_reason(topic: str, payload: bytes, reason: str) -> None:
    result = decoder().decode(topic, payload, NOW)
    assert isinstance(result, Quarantined)
    assert result.reason == reason and result.payload == payload and result.topic == topic
    assert result.detail


def test_signature_is_checked_before_the_topic() -> None:
    forged = envelope(OTHER.private_hex)
    result = decoder().decode("hall/v1/h1/entrance/evt/rating", forged, NOW)
    assert isinstance(result, Quarantined) and result.reason == "bad_signature"


def test_watermark_advances_over_contiguous_runs_only() -> None:
    marks = Watermarks()
    assert marks.accept("e", 1, 0.0) is None and marks.mark("e") == 1
    marks.accept("e", 3, 0.0)
    assert marks.mark("e") == 1  # 2 missing
    marks.accept("e", 2, 1.0)
    assert marks.mark("e") == 3


def test_seq_reset_restarts_the_watermark() -> None:
    marks = Watermarks()
    for seq in (1, 2, 3, 4):
        marks.accept("e", seq, 0.0)
    notice = marks.accept("e", 1, 0.0)  # a new id with an old seq: the outbox was lost
    assert notice is not None and notice.kind == "seq_reset" and notice.detail["previous_mark"] == 4
    assert marks.mark("e") == 1
    assert marks.accept("e", 2, 0.0) is None and marks.mark("e") == 2


def test_an_overdue_gap_is_reported_once_and_stepped_over() -> None:
    marks = Watermarks()
    marks.accept("e", 1, 0.0)
    marks.accept("e", 4, 10.0)
    assert marks.overdue_gaps(now=69.0, limit_s=60) == []
    notices = marks.overdue_gaps(now=71.0, limit_s=60)
    assert [(n.kind, n.detail) for n in notices] == [("seq_gap", {"from": 2, "to": 3})]
    assert marks.mark("e") == 4
    assert marks.overdue_gaps(now=500.0, limit_s=60) == []


E1, E2 = "00000000000000e1", "00000000000000e2"


def test_each_outbox_epoch_has_its_own_watermark() -> None:
    marks = Watermarks()
    for seq in (1, 2, 3):
        assert marks.accept("e", seq, 0.0, E1) is None
    notice = marks.accept("e", 1, 0.0, E2)  # a new outbox: numbered from 1 again
    assert notice is not None and notice.kind == "seq_reset" and notice.epoch == E2
    assert notice.detail == {"seq": 1, "previous_mark": 3, "epoch": E2, "previous_epoch": E1}
    assert (marks.mark("e", E1), marks.mark("e", E2)) == (3, 1)
    assert marks.current() == [("e", E2)]
    marks.accept("e", 4, 0.0, E1)  # a late event of the old outbox moves only its own watermark
    assert (marks.mark("e", E1), marks.mark("e", E2), marks.current()) == (4, 1, [("e", E2)])


def test_a_device_moving_to_version_2_keeps_its_watermark() -> None:
    marks = Watermarks()
    for seq in (1, 2, 3):
        marks.accept("e", seq, 0.0)
    assert marks.accept("e", 4, 0.0, E1) is None  # the same outbox, now naming its epoch
    assert marks.mark("e", E1) == 4 and marks.current() == [("e", E1)]
    fresh = Watermarks()
    for seq in (1, 2, 3):
        fresh.accept("e", seq, 0.0)
    notice = fresh.accept("e", 1, 0.0, E1)  # a lower seq with an epoch: a new outbox after all
    assert notice is not None and notice.kind == "seq_reset" and fresh.mark("e", E1) == 1
    assert fresh.mark("e") == 3


def test_hub_example_config_validates() -> None:
    config = load(ROOT / "config" / "hub.example.toml", hub_config.HubConfig)
    assert config.schedule.to_domain().sessions[0].name == "上午"
    assert config.schedule.grace_minutes == 5


def test_the_default_reports_dir_is_beside_the_config_not_the_working_directory(tmp_path: Path) -> None:
    path = tmp_path / "hall" / "hub.toml"
    path.parent.mkdir()
    path.write_text(f'hall = "h1"\nprivate_key = "{OTHER.private_hex}"\n', encoding="utf-8")
    assert hub_config.load(path).reports.dir == tmp_path / "hall" / "reports"


def test_hub_config_errors_name_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(
        f'hall = "h1"\nprivate_key = "{DEVICE.private_hex}"\n'
        '[[staff]]\nid = "S1"\nname = "甲"\ncards = ["0A004A7B2C"]\n'
        '[[staff]]\nid = "S2"\nname = "乙"\ncards = ["XYZ"]\n'
        '[schedule]\ngrace_minutes = -1\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        hub_config.load(path)
    message = str(caught.value)
    assert f"{path}: staff[1].cards" in message and f"{path}: schedule.grace_minutes" in message


def test_two_staff_with_one_card_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(
        f'hall = "h1"\nprivate_key = "{DEVICE.private_hex}"\n'
        '[[staff]]\nid = "S1"\nname = "甲"\ncards = ["0A004A7B2C"]\n'
        '[[staff]]\nid = "S2"\nname = "乙"\ncards = ["0004881196"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="S1.*S2|S2.*S1"):
        hub_config.load(path)
