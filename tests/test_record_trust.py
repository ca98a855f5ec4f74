"""The record as a newcomer tested it: tables the rules read are checked against the log both ways,
rules read only what verifies, log time never goes back, a missing store is an error."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import delete, insert, select, update
from test_store import ENTRANCE, KEYS, START, leave, make_event, sql

from hub.audit import verify_log
from hub.store.schema import audit, events, leaves
from hub.store.store import ClockBehind, Store, StoreMissing, entry_hash
from wire.clock import FixedClock


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store(store_url, FixedClock(START))
    yield opened
    opened.close()


def test_an_edited_leave_row_is_caught_and_the_rules_keep_the_logged_leave(store: Store,
                                                                          store_url: str) -> None:
    logged = leave("s1", 25)
    store.add_leave(logged)
    assert verify_log(store, KEYS).ok
    sql(store_url, lambda c: c.execute(update(leaves).values(end="2026-11-27T17:30:00.000+08:00")))
    report = verify_log(store, KEYS)
    assert not report.ok and report.first_bad == 1
    assert "leave row 1 differs from its log entry (altered)" in str(report.problem)
    assert store.leaves() == [logged]  # what the attendance rules read: the logged leave only


def test_a_leave_row_inserted_outside_the_log_is_caught_and_ignored(store: Store, store_url: str) -> None:
    store.add_leave(leave("s1", 25))
    forged = {"staff": "s2", "start": "2026-11-24T00:00:00.000+08:00", "end": "2026-11-25T00:00:00.000+08:00",
              "approver": "head", "reason": "", "recorded_at": "2026-11-24T08:00:00.000+08:00"}
    sql(store_url, lambda c: c.execute(insert(leaves).values(**forged)))
    report = verify_log(store, KEYS)
    assert not report.ok and "leave row 2 has no log entry (inserted outside the log)" in str(report.problem)
    assert [item.staff for item in store.leaves()] == ["s1"]


def test_a_removed_leave_row_is_caught_and_the_logged_leave_still_counts(store: Store,
                                                                         store_url: str) -> None:
    logged = leave("s1", 25)
    store.add_leave(logged)
    sql(store_url, lambda c: c.execute(delete(leaves)))
    report = verify_log(store, KEYS)
    assert not report.ok and "leave row 1 missing from its table (removed)" in str(report.problem)
    assert store.leaves() == [logged]


def test_an_edited_closure_entry_is_left_out(store: Store, store_url: str) -> None:
    store.append("case_closed", {"case": "C-1", "closed_by": "主任", "result": "已回访"}, ref="C-1")
    store.append("case_closed", {"case": "C-2", "closed_by": "主任", "result": "已回访"}, ref="C-2")
    edited = '{"case":"C-1","closed_by":"主任","result":"群众满意"}'
    sql(store_url, lambda c: c.execute(update(audit).where(audit.c.seq == 1).values(data=edited)))
    assert [e.ref for e in store.entries("case_closed")] == ["C-2"]
    assert not verify_log(store, KEYS).ok


def test_a_rehashed_entry_that_breaks_the_next_link_is_left_out(store: Store, store_url: str) -> None:
    first = store.append("face_enroll", {"staff": "s1", "encoding": [1, 2]}, ref="s1")
    store.append("roster", {"staff": []})
    data = {"staff": "s2", "encoding": [1, 2]}  # re-pointed to someone else, its own hash recomputed
    digest = entry_hash(1, "2026-11-24T08:00:00.000+08:00", "face_enroll", "s1", data, first.prev_hash)
    sql(store_url, lambda c: c.execute(update(audit).where(audit.c.seq == 1).values(
        data='{"encoding":[1,2],"staff":"s2"}', hash=digest)))
    assert list(store.entries("face_enroll")) == []


def test_a_manual_write_behind_the_log_is_refused_and_the_daemon_keeps_order(store_url: str) -> None:
    clock = FixedClock(START)
    store = Store(store_url, clock)
    store.append("roster", {"n": 1})
    clock.advance(-86400)  # `--clock` a day back
    with pytest.raises(ClockBehind, match="behind the log's last entry #1"):
        store.add_leave(leave("s1", 25))
    assert store.leaves() == [] and store.leave_rows() == []  # nothing half-written
    daemon = Store(store_url, clock, clock_policy="clamp")  # the hub's clock stepped back
    entry = daemon.append("roster", {"n": 2})
    assert entry.at == START and verify_log(daemon, KEYS).ok
    clock.advance(2 * 86400)
    assert store.append("roster", {"n": 3}).at == START + timedelta(days=1)
    store.close()
    daemon.close()


def test_verify_reports_an_entry_whose_time_goes_backwards(store: Store, store_url: str) -> None:
    store.append("roster", {"n": 1})
    store.append("roster", {"n": 2})
    backdated = "2026-11-23T08:00:00.000+08:00"

    def backdate(conn) -> None:  # type: ignore[no-untyped-def]
        first = conn.execute(select(audit).where(audit.c.seq == 1)).one()
        digest = entry_hash(2, backdated, "roster", None, {"n": 2}, first.hash)
        conn.execute(update(audit).where(audit.c.seq == 2).values(at=backdated, hash=digest))

    sql(store_url, backdate)
    report = verify_log(store, KEYS)
    assert not report.ok and report.first_bad == 2 and "time goes backwards" in str(report.problem)


def test_an_edited_event_row_is_left_out_of_the_rules(store_url: str) -> None:
    event = make_event(ENTRANCE, 1)
    Store(store_url, FixedClock(START)).ingest([event])
    sql(store_url, lambda c: c.execute(update(events).values(ts="2026-11-24T08:29:00.000+08:00")))
    trusting = Store(store_url, FixedClock(START), device_keys=KEYS)
    assert trusting.events() == []  # the row no longer matches what the device signed
    assert len(Store(store_url, FixedClock(START)).events()) == 1  # without keys: as stored
    trusting.close()


def test_a_missing_database_is_an_error_and_is_not_created(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "nowhere.db"
    with pytest.raises(StoreMissing, match="no hub database"):
        Store(f"sqlite:///{path}", FixedClock(START), create=False)
    assert not path.exists()
    path.write_bytes(b"")
    with pytest.raises(StoreMissing, match="is not a hub store"):
        Store(f"sqlite:///{path}", FixedClock(START), create=False)


def test_an_empty_log_does_not_verify(store: Store) -> None:
    report = verify_log(store, KEYS)
    assert not report.ok and "the log is empty" in str(report.problem)
