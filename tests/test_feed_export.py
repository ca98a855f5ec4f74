"""`hall-hub export ratings` (数据归集) on SQLite and on a real PostgreSQL: every rating in log order
with its flags, cursor paging that gives each record exactly once, an appeal decided after an
export coming as a later revision of the same id, JSON lines and CSV, bad cursors refused."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from test_complaints import clock, refused
from test_hub_window import DAY, at, hub_cli, make_hall, store_script

from hub.feed.records import GENERIC_FIELDS, PROVINCES
from hub.store.store import Store

NOW = "2026-11-25T12:00:00"  # the day after: every punch and sign of the day known


@pytest.fixture
def hall(tmp_path: Path, store_url: str) -> Iterator[tuple[Path, Store]]:
    config, store = make_hall(tmp_path, store_url)
    yield config, store
    store.close()


def export(config: Path, *args: str, moment: str = NOW) -> subprocess.CompletedProcess[str]:
    return hub_cli(config, "export", "ratings", *args, *clock(moment))


def jsonl(result: subprocess.CompletedProcess[str]) -> tuple[list[dict[str, Any]], str]:
    """The records and the cursor of a JSON-lines export."""
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert list(lines[-1]) == ["cursor"], lines[-1]
    return lines[:-1], lines[-1]["cursor"]


def test_every_rating_in_log_order_with_its_staff_ticket_and_flags(hall: tuple[Path, Store]) -> None:
    config, store = hall
    records, cursor = jsonl(export(config))
    assert [(r["window"], r["level"], r["level_name"], r["staff"], r["ticket"], r["invited"], r["counted"],
             r["flags"], r["revision"], r["appeal"]) for r in records] == [
        ("01", 5, "非常满意", "S001", "A001", True, True, [], 0, None),
        ("01", 5, "非常满意", "S001", None, False, False, ["misuse_repeat"], 0, None),
        ("02", 1, "非常不满意", None, None, False, True, ["nobody_on_duty"], 0, None),
        ("02", 2, "不满意", "S002", None, False, True, [], 0, None),
    ]
    assert all(list(r) == list(GENERIC_FIELDS) and r["hall"] == "h1" for r in records)
    assert records[0]["at"].startswith(f"{DAY}T09:00") and records[0]["at"].endswith("+08:00")
    assert records[0]["logged_at"] == f"{DAY}T18:00:00.000+08:00"
    shown = json.loads(hub_cli(config, "ratings", "--date", DAY, "--json", *clock(NOW)).stdout)
    assert [r["id"] for r in records] == [r["id"] for r in shown["ratings"]]  # the rating's event id
    last = store.last_audit()
    assert last is not None and cursor == f"h1:{last.seq}"
    again, same = jsonl(export(config, "--since", cursor))
    assert (again, same) == ([], cursor)  # nothing new: nothing again


def test_paging_gives_each_record_once_and_a_later_appeal_as_a_revision(hall: tuple[Path, Store]) -> None:
    config, store = hall
    everything, end = jsonl(export(config))
    paged: list[dict[str, Any]] = []
    cursor = ""
    for _ in range(10):
        page, cursor = jsonl(export(config, "--limit", "3", *(("--since", cursor) if cursor else ())))
        if not page:
            break
        paged.extend(page)
    assert paged == everything and cursor == end
    assert len({r["id"] for r in paged}) == len(paged) == 4

    store_script(store, [(at("11:30"), "rating", {"window": "01", "level": 4, "keys": 5, "invited": True,
                                                  "invite": "i9", "ticket": "B007"})],
                 timedelta(seconds=1), first_seq=9)
    bad = everything[3]["id"]  # S002's 不满意, appealed and accepted the next morning
    for step in (("appeal", "--by", "S002 王芳", "--reason", "群众误按", *clock("2026-11-25T09:00:00")),
                 ("decide", "--by", "办公室主任", "--accept", "--note", "监控显示误按",
                  *clock("2026-11-25T10:00:00"))):
        done = hub_cli(config, "ratings", step[0], "--rating", bad, *step[1:])
        assert done.returncode == 0, done.stderr
    later, _ = jsonl(export(config, "--since", end))
    assert [(r["ticket"], r["revision"], r["counted"], r["flags"], r["appeal"]) for r in later] == [
        ("B007", 0, True, [], None),  # the new rating
        (None, 1, False, ["excluded_by_appeal"], "accepted"),  # the exported one, now excluded
    ]
    assert later[1]["id"] == bad and later[1]["logged_at"].startswith("2026-11-25T10:00")
    assert {k: v for k, v in later[1].items() if k not in ("revision", "counted", "flags", "appeal",
                                                            "logged_at")} == \
        {k: v for k, v in everything[3].items() if k not in ("revision", "counted", "flags", "appeal",
                                                             "logged_at")}
    whole, _ = jsonl(export(config))  # from the start: the same history in one go
    assert whole == everything + later


def test_csv_has_the_record_fields_and_the_cursor_last(hall: tuple[Path, Store]) -> None:
    config, _ = hall
    records, cursor = jsonl(export(config))
    result = export(config, "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == list(GENERIC_FIELDS) == list(PROVINCES["generic"].fields)
    assert rows[-1] == ["#cursor", cursor]
    table = [dict(zip(rows[0], row, strict=True)) for row in rows[1:-1]]
    assert [r["id"] for r in table] == [r["id"] for r in records]
    assert [(r["staff"], r["ticket"], r["counted"], r["flags"], r["appeal"]) for r in table] == [
        ("S001", "A001", "true", "", ""), ("S001", "", "false", "misuse_repeat", ""),
        ("", "", "true", "nobody_on_duty", ""), ("S002", "", "true", "", "")]
    second = export(config, "--format", "csv", "--since", rows[-1][1]).stdout.splitlines()
    assert second == [",".join(GENERIC_FIELDS), f"#cursor,{cursor}"]


def test_a_cursor_not_of_this_log_is_refused(hall: tuple[Path, Store]) -> None:
    config, store = hall
    assert "hall 'h2'" in refused(export(config, "--since", "h2:3"))
    assert "not one this hub gave" in refused(export(config, "--since", "yesterday"))
    last = store.last_audit()
    assert last is not None
    assert "beyond this log's end" in refused(export(config, "--since", f"h1:{last.seq + 1}"))
