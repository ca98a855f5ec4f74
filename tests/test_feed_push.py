"""The feed pushed to a real HTTP receiver the test starts (tests/feed_receiver.py): 503 and 429
retried with backoff, the bearer token sent, nothing received twice after a success, a 400 is
permanent, and `hall-hub run` resuming from the cursor in the log after a stop and after SIGKILL."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from feed_receiver import Receiver
from pg_server import free_port
from test_complaints import clock
from test_hub_window import ROOT, at, hub_cli, make_hall, store_script

from hub import config as hub_config
from hub.appeals import appeal_rating, decide_appeal
from hub.feed.push import FeedPusher
from hub.store.store import StaleRef, Store
from wire.clock import FixedClock
from wire.configfile import ConfigError

NOW = "2026-11-25T12:00:00"
FAST = "backoff_seconds = 0.05\nbackoff_max_seconds = 0.2\ninterval_seconds = 0.2\ntimeout_seconds = 10\n"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


def feed_hall(tmp_path: Path, url: str, more: str = "") -> tuple[Path, Store]:
    (tmp_path / "token.txt").write_text("s3cret\n", encoding="utf-8")
    return make_hall(tmp_path, more=f'[feed]\nurl = "{url}"\ntoken_file = "token.txt"\n{FAST}{more}')


def push(config: Path, *args: str, moment: str = NOW) -> subprocess.CompletedProcess[str]:
    return hub_cli(config, "feed", "push", *args, *clock(moment))


def exported(config: Path) -> list[dict[str, Any]]:
    result = hub_cli(config, "export", "ratings", *clock(NOW))
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()[:-1]]


def keys(records: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(r["id"], r["revision"]) for r in records]


def logged(config: Path, kind: str) -> list[dict[str, Any]]:
    result = hub_cli(config, "log", "show", "--kind", kind, "--json", *clock(NOW))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_503_and_429_are_retried_and_what_was_taken_is_never_sent_again(
        tmp_path: Path, receiver: Receiver) -> None:
    config, store = feed_hall(tmp_path, receiver.url, "batch = 3\n")
    store.close()
    receiver.plan = [503, 429, 503]
    done = push(config)
    assert done.returncode == 0, done.stderr
    assert "sent 4 record(s) in 2 batch(es)" in done.stdout
    got = receiver.received
    assert [r.status for r in got] == [503, 429, 503, 200, 200]
    assert got[0].body == got[1].body == got[2].body == got[3].body  # the same batch, until taken
    assert [len(r.body["records"]) for r in got[3:]] == [3, 1]
    assert all(r.headers["Authorization"] == "Bearer s3cret" for r in got)
    assert all(r.headers["Idempotency-Key"] == r.body["cursor"] for r in got)
    assert got[3].body["since"] == "h1:0" and got[4].body["since"] == got[3].body["cursor"]
    assert keys(receiver.accepted()) == keys(exported(config))  # each once, in log order
    sent = logged(config, "feed_sent")
    assert [(e["data"]["count"], e["ref"]) for e in sent] == [(3, got[3].body["cursor"]),
                                                               (1, got[4].body["cursor"])]

    again = push(config)
    assert again.returncode == 0 and "sent 0 record(s)" in again.stdout
    assert len(receiver.received) == 5  # nothing pending: no request at all

    bad = receiver.accepted()[3]["id"]
    for step in (("appeal", "--by", "S002", "--reason", "误按", *clock("2026-11-25T12:10:00")),
                 ("decide", "--by", "主任", "--accept", "--note", "监控", *clock("2026-11-25T12:20:00"))):
        assert hub_cli(config, "ratings", step[0], "--rating", bad, *step[1:]).returncode == 0
    third = push(config, moment="2026-11-25T12:30:00")
    assert third.returncode == 0 and "sent 1 record(s)" in third.stdout
    revision = receiver.received[-1].body["records"]
    assert [(r["id"], r["revision"], r["counted"], r["appeal"]) for r in revision] == [
        (bad, 1, False, "accepted")]
    assert len(set(keys(receiver.accepted()))) == len(receiver.accepted()) == 5
    verified = hub_cli(config, "log", "verify", *clock(NOW))
    assert verified.returncode == 0, verified.stderr


def test_a_400_is_permanent_and_logged(tmp_path: Path, receiver: Receiver) -> None:
    config, store = feed_hall(tmp_path, receiver.url)
    store.close()
    receiver.set_default(400)
    done = push(config)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "HTTP 400" in done.stderr and "cursor is h1:0" in done.stderr and "Traceback" not in done.stderr
    assert [r.status for r in receiver.received] == [400]  # never retried
    refused = logged(config, "feed_refused")
    assert [(e["data"]["status"], e["data"]["since"], e["data"]["count"]) for e in refused] == [
        (400, "h1:0", 4)]
    assert logged(config, "feed_sent") == []
    receiver.set_default(200)  # the receiver fixed: the next push sends everything, once
    assert push(config).returncode == 0
    assert keys(receiver.accepted()) == keys(exported(config))


def test_an_unreachable_receiver_gives_up_after_the_attempts(tmp_path: Path) -> None:
    config, store = feed_hall(tmp_path, f"http://127.0.0.1:{free_port()}/feed")
    store.close()
    done = push(config, "--attempts", "3")
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert "3 tries" in done.stderr and "cursor is h1:0" in done.stderr and "Traceback" not in done.stderr


def test_the_daemon_resumes_from_the_logged_cursor_after_a_stop_and_a_kill(
        tmp_path: Path, receiver: Receiver) -> None:
    broker = f'[broker]\nlisten = "127.0.0.1:{free_port()}"\n'
    config, store = feed_hall(tmp_path, receiver.url, f"batch = 2\n{broker}")
    url = hub_config.load(config).store.url
    store.close()
    receiver.plan = [503]
    hub = run_hub(config, "2026-11-25T12:00:00", tmp_path / "hub-1.log")
    try:
        receiver.wait_for(lambda r: len(r.accepted()) == 4)
    finally:
        assert stop(hub) == 0
    first = keys(receiver.accepted())
    assert first == keys(exported(config))

    later = Store(url, FixedClock(datetime.fromisoformat("2026-11-25T13:00:00+08:00")))
    store_script(later, [(at("11:30"), "rating", {"window": "01", "level": 4, "keys": 5, "invited": True,
                                                  "invite": "i9", "ticket": "B007"})],
                 timedelta(seconds=1), first_seq=9)
    later.close()
    receiver.set_default(503)  # the province is down: the hub retries until it is killed
    hub = run_hub(config, "2026-11-25T14:00:00", tmp_path / "hub-2.log")
    try:
        receiver.wait_for(lambda r: sum(g.status == 503 for g in r.received) >= 3)
    finally:
        hub.send_signal(signal.SIGKILL)
        hub.wait(timeout=30)
    assert keys(receiver.accepted()) == first

    receiver.set_default(200)
    hub = run_hub(config, "2026-11-25T15:00:00", tmp_path / "hub-3.log")
    try:
        receiver.wait_for(lambda r: len(r.accepted()) == 5)
    finally:
        assert stop(hub) == 0
    taken = receiver.accepted()
    assert keys(taken) == keys(exported(config))  # every record once across the restarts
    assert taken[-1]["ticket"] == "B007"
    assert len(logged(config, "feed_sent")) == 3  # 2 + 2, then the new one


def test_one_pusher_keeps_the_batches_contiguous_across_idle_passes(
        tmp_path: Path, receiver: Receiver) -> None:
    config, store = feed_hall(tmp_path, receiver.url)
    try:
        pusher = FeedPusher(hub_config.load(config), store)
        assert pusher.push().records == 4
        idle = pusher.push()  # nothing new: the entries it passed are not read again
        assert (idle.records, len(receiver.received)) == (0, 1)
        bad = receiver.accepted()[3]["id"]
        appeal_rating(store, bad, "S002", "误按")
        decide_appeal(store, bad, "主任", False, "评价属实")  # rejected: a revision all the same
        assert pusher.push().records == 1
        first, second = (r.body for r in receiver.received)
        assert second["since"] == first["cursor"]  # each batch follows the one before
        assert [(r["id"], r["revision"], r["counted"], r["appeal"]) for r in second["records"]] == [
            (bad, 1, True, "rejected")]
    finally:
        store.close()


def run_hub(config: Path, start: str, log: Path) -> subprocess.Popen[str]:
    with log.open("w", encoding="utf-8") as out:
        return subprocess.Popen([sys.executable, "-m", "hub.cli", "run", "--config", str(config),
                                 "--clock", f"{start}+08:00"], stdout=out, stderr=subprocess.STDOUT,
                                text=True, cwd=ROOT)


def stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()


def test_the_cursor_moves_only_from_where_its_writer_read_it(store_url: str) -> None:
    store = Store(store_url, FixedClock(datetime.fromisoformat("2026-11-25T12:00:00+08:00")))
    try:
        store.append_after("feed_sent", {"cursor": "h1:5"}, "h1:5", None)
        with pytest.raises(StaleRef):  # a second pusher that read "no cursor yet"
            store.append_after("feed_sent", {"cursor": "h1:6"}, "h1:6", None)
        store.append_after("feed_sent", {"cursor": "h1:7"}, "h1:7", "h1:5")
        last = store.last_audit("feed_sent")
        assert last is not None and last.ref == "h1:7"
    finally:
        store.close()


def test_feed_config_errors_name_the_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text('hall = "h1"\n[feed]\nurl = "ftp://x"\nbatch = 0\nprovince = "mars"\ncolour = 1\n',
                      encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        hub_config.load(config, read_key=False)
    report = caught.value.report()
    for key in ("feed.url", "feed.batch", "feed.province", "feed.colour"):
        assert f"{config}: {key}:" in report, report
    config.write_text('hall = "h1"\n[feed]\nurl = "https://x"\ntoken = "a"\ntoken_file = "t"\n',
                      encoding="utf-8")
    with pytest.raises(ConfigError, match="one of token and token_file"):
        hub_config.load(config, read_key=False)
