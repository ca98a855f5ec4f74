"""The entrance terminal's card+face logic on its own (a fake clock, recorded events in a list)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from edge_agent.entrance import Entrance, FaceSeen, card_owner

AT = datetime(2026, 11, 24, 8, 20, tzinfo=ZoneInfo("Asia/Shanghai"))
STAFF = [{"id": "S001", "cards": ["0A004A7B2C"]}, {"id": "S002", "cards": ["0003887558"]}]


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def face(staff: str | None, live: bool = True) -> FaceSeen:
    return FaceSeen(staff, 400, "match" if staff else "unknown", live, b"\xff\xd8jpeg", AT)


SNAPSHOTS: list[bytes | None] = []  # the attachment of each recorded event, in order


def make(seconds: float | None) -> tuple[Entrance, list[tuple[str, dict[str, Any], str]], Clock]:
    events: list[tuple[str, dict[str, Any], str]] = []
    clock = Clock()
    SNAPSHOTS.clear()

    def record(type_: str, body: dict[str, Any], ts: str, attachment: bytes | None = None) -> None:
        events.append((type_, body, ts))
        SNAPSHOTS.append(attachment)

    return Entrance(seconds, record, clock), events, clock


@pytest.mark.parametrize("card, owner", [
    ("0A004A7B2C", "S001"), ("67003B51C6", "S002"), ("00003B51C6", "S002"), ("1F00644BB6", None),
])
def test_card_owner_by_hex_or_printed_number(card: str, owner: str | None) -> None:
    assert card_owner(card, STAFF) == owner


def test_card_only_mode_records_at_once() -> None:
    entrance, events, _ = make(None)
    entrance.card("0A004A7B2C", AT)
    assert events == [("clock", {"method": "card", "card": "0A004A7B2C"}, "2026-11-24T08:20:00.000+08:00")]


def test_card_then_face_in_time_is_one_card_face_event() -> None:
    entrance, events, clock = make(10)
    entrance.card("0A004A7B2C", AT)
    clock.t = 4
    assert entrance.face(face("S001")) == "card+face"
    assert len(events) == 1
    _, body, ts = events[0]
    assert (body["method"], body["card"], body["staff"], body["live"]) == ("card+face", "0A004A7B2C",
                                                                          "S001", True)
    # the JPEG goes beside the event, which signs its SHA-256 (PROTOCOL.md 2.7)
    assert SNAPSHOTS == [b"\xff\xd8jpeg"] and "photo" not in body
    assert body["photo_sha256"] == hashlib.sha256(b"\xff\xd8jpeg").hexdigest()
    assert ts.endswith("08:20:00.000+08:00")


def test_another_face_is_kept_as_card_face_with_both_pieces_of_evidence() -> None:
    entrance, events, _ = make(10)
    entrance.card("0A004A7B2C", AT)
    entrance.face(face("S002"))  # S002's face with S001's card: a suspected buddy punch
    assert [(b["card"], b["staff"]) for _, b, _ in events] == [("0A004A7B2C", "S002")]
    entrance.card("0A004A7B2C", AT)
    entrance.face(face(None))  # an unknown face with a card: kept too
    assert events[-1][1]["method"] == "card+face" and events[-1][1]["staff"] is None


def test_no_face_in_time_falls_back_to_a_card_punch() -> None:
    entrance, events, clock = make(10)
    entrance.card("0A004A7B2C", AT)
    clock.t = 9
    entrance.tick()
    assert events == []
    clock.t = 11
    entrance.tick()
    assert [b["method"] for _, b, _ in events] == ["card"]
    assert entrance.face(face("S001")) == "face"  # later faces clock on their own


def test_unknown_face_without_a_card_records_nothing() -> None:
    entrance, events, _ = make(None)
    assert entrance.face(face(None)) is None and events == []
    assert entrance.face(face("S001", live=False)) == "face"
    assert events[0][1]["live"] is False  # a failed liveness attempt is recorded, judged at the hub


def test_a_face_that_failed_liveness_does_not_complete_a_card_face_punch() -> None:
    entrance, events, clock = make(10)
    entrance.card("0A004A7B2C", AT)
    assert entrance.face(face("S001", live=False)) == "face"  # recorded as a failed attempt
    assert entrance.face(face("S001")) == "card+face"  # the tap was still waiting
    assert [b["method"] for _, b, _ in events] == ["face", "card+face"]
