"""`hall-hub COMMAND --config city.toml --hall H`: a hall's command given a city config runs on that
hall's `[[halls]]` entry (included or inline) exactly as on the hall's own config: its store, roster
and key. Without --hall the city config is refused with its halls listed; an unknown --hall names the
known ones; --hall given a hall's own config is accepted only when it names that hall."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from city_console_hall import DAY, EDGE, at, store_events
from pg_server import PostgresServer

from hub.cli import main
from hub.store.store import Store
from wire.clock import FixedClock
from wire.envelope import generate_keypair

ROOT = Path(__file__).resolve().parents[1]
CLOCK = f"{DAY}T18:00:00+08:00"
KEYS = {"h01": generate_keypair(), "h02": generate_keypair()}
RATING = {"window": "01", "keys": 5, "invited": False, "invite": None, "ticket": None}
# Each hall's entrance box: a punch of its one member of staff, then its ratings (h01 two, h02 one).
SCRIPTS = {"h01": [("08:20", "clock", {"method": "card", "card": "0A004A7B2C"}),
                   ("09:30", "rating", {**RATING, "level": 5}), ("10:30", "rating", {**RATING, "level": 1})],
           "h02": [("08:40", "clock", {"method": "card", "card": "1F00644BB6"}),
                   ("09:30", "rating", {**RATING, "level": 4})]}
ENTRIES = {"h01": 3, "h02": 2}  # each hall's log: its events

Capture = pytest.CaptureFixture[str]

pytestmark = pytest.mark.postgres


@dataclass(frozen=True)
class TwoHalls:
    city: Path  # h01 included from h01.toml (its key in keys/h01.key), h02 inline (its key inline)
    h01: Path  # h01's own file


def _devices_and_rules(prefix: str) -> str:
    return (f'[{prefix}broker]\nurl = "mqtt://127.0.0.1:1883"\n'
            f'[[{prefix}devices]]\nid = "entrance"\nname = "入口"\npublic_key = "{EDGE.public_hex}"\n'
            f'[{prefix}ratings]\nrepeat_seconds = 30\n[{prefix}schedule]\nrequire_leave_punch = false\n')


def make_halls(base: Path, pg: PostgresServer) -> TwoHalls:
    urls = {hall: pg.create_database() for hall in KEYS}
    (base / "keys").mkdir()
    (base / "keys" / "h01.key").write_text(KEYS["h01"].private_hex + "\n", encoding="ascii")
    (base / "keys" / "h01.key").chmod(0o600)
    (base / "h01.toml").write_text(
        f'hall = "h01"\nprivate_key_file = "keys/h01.key"\n[store]\nurl = "{urls["h01"]}"\n'
        + _devices_and_rules("")
        + '[[staff]]\nid = "S001"\nname = "张伟"\nwindow = "01"\ncards = ["0A004A7B2C"]\n', encoding="utf-8")
    city = base / "city.toml"
    city.write_text(
        f'[city]\nname = "c2"\nstore = "{pg.create_database()}"\n'
        '[[halls]]\ninclude = "h01.toml"\n'
        f'[[halls]]\nhall = "h02"\nprivate_key = "{KEYS["h02"].private_hex}"\n'
        f'[halls.store]\nurl = "{urls["h02"]}"\n' + _devices_and_rules("halls.")
        + '[[halls.staff]]\nid = "S002"\nname = "王芳"\nwindow = "01"\ncards = ["1F00644BB6"]\n',
        encoding="utf-8")
    for hall, url in urls.items():
        store = Store(url, FixedClock(at("18:00")))
        store_events(store, hall, SCRIPTS[hall])
        store.close()
    return TwoHalls(city, base / "h01.toml")


@pytest.fixture(scope="module")
def halls(tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer) -> TwoHalls:
    """The halls the reading tests share (nothing is written to them)."""
    return make_halls(tmp_path_factory.mktemp("city-hall"), postgres_server)


def hub(capsys: Capture, *args: str) -> tuple[int, str, str]:
    """`hall-hub ARGS` in this process at the halls' 18:00: (exit code, stdout, stderr)."""
    code = main([*args, "--clock", CLOCK])
    out, err = capsys.readouterr()
    return code, out, err


def test_attendance_is_the_chosen_hall_s_as_its_own_config_gives_it(halls: TwoHalls, capsys: Capture) -> None:
    day = ("attendance", "--date", DAY, "--at", "18:00")
    code, own, _ = hub(capsys, *day, "--config", str(halls.h01))
    assert code == 0 and "张伟" in own
    assert hub(capsys, *day, "--config", str(halls.city), "--hall", "h01") == (0, own, "")
    code, h02, err = hub(capsys, *day, "--config", str(halls.city), "--hall", "h02")
    assert code == 0, err
    assert "王芳" in h02 and "张伟" not in h02
    code, rows, _ = hub(capsys, *day, "--json", "--config", str(halls.city), "--hall", "h02")
    assert code == 0 and {(r["staff"], r["name"]) for r in json.loads(rows)} == {("S002", "王芳")}


def test_log_verify_reads_the_chosen_hall_s_log(halls: TwoHalls, capsys: Capture) -> None:
    for hall, entries in ENTRIES.items():
        code, out, err = hub(capsys, "log", "verify", "--config", str(halls.city), "--hall", hall)
        assert code == 0, err
        assert f"日志完整 log verified: {entries} entries" in out
    code, shown, _ = hub(capsys, "log", "show", "--json", "--config", str(halls.city), "--hall", "h02")
    assert code == 0 and [e["kind"] for e in json.loads(shown)] == ["event", "event"]


def test_log_head_is_signed_with_the_chosen_hall_s_key(halls: TwoHalls, capsys: Capture) -> None:
    """A signing command reads the chosen hall's key: h01's from its key file, h02's inline."""
    for hall, pair in KEYS.items():
        code, out, err = hub(capsys, "log", "head", "--json", "--config", str(halls.city), "--hall", hall)
        assert code == 0, err
        head = json.loads(out)
        assert head["hub_public_key"] == pair.public_hex and head["entries"] == ENTRIES[hall]


def test_a_write_goes_to_the_chosen_hall_s_store(tmp_path: Path, postgres_server: PostgresServer,
                                                 capsys: Capture) -> None:
    city = str(make_halls(tmp_path, postgres_server).city)
    leave = ("leave", "add", "--config", city, "--staff", "S002", "--from", "2026-11-25",
             "--to", "2026-11-25", "--approver", "主任", "--by", "t")
    code, out, err = hub(capsys, *leave, "--hall", "h02")
    assert code == 0 and "S002" in out, err
    code, listed, _ = hub(capsys, "leave", "list", "--config", city, "--hall", "h02")
    assert code == 0 and "王芳" in listed
    code, listed, _ = hub(capsys, "leave", "list", "--config", city, "--hall", "h01")
    assert code == 0 and "无记录" in listed and "S002" not in listed
    code, _, err = hub(capsys, *leave, "--hall", "h01")
    assert code == 2 and "S002" in err  # h01's roster has no S002


def test_without_hall_a_city_config_is_refused_with_its_halls(halls: TwoHalls,
                                                               capsys: Capture) -> None:
    code, out, err = hub(capsys, "log", "verify", "--config", str(halls.city))
    assert (code, out) == (2, "")
    assert "`log verify` runs on one hall: add --hall HALL (its halls: h01, h02)" in err
    assert hub(capsys, "attendance", "--date", DAY, "--config", str(halls.city))[0] == 2


def test_an_unknown_hall_names_the_known_ones(halls: TwoHalls, capsys: Capture) -> None:
    code, out, err = hub(capsys, "log", "verify", "--config", str(halls.city), "--hall", "h09")
    assert (code, out) == (2, "")
    assert f"--hall h09: not a hall of {halls.city} (its halls: h01, h02)" in err


def test_hall_given_a_hall_s_own_config_must_name_that_hall(halls: TwoHalls,
                                                            capsys: Capture) -> None:
    assert hub(capsys, "log", "verify", "--config", str(halls.h01), "--hall", "h01")[0] == 0
    code, _, err = hub(capsys, "log", "verify", "--config", str(halls.h01), "--hall", "h02")
    assert code == 2 and f"--hall h02: {halls.h01} is the config of hall h01 alone" in err


def test_hall_is_refused_for_the_city_s_own_commands(halls: TwoHalls, capsys: Capture) -> None:
    for command in (["check"], ["run"], ["web"], ["user", "list"]):
        code, _, err = hub(capsys, *command, "--config", str(halls.city), "--hall", "h01")
        assert code == 2 and f"`{' '.join(command)}` is for the whole city" in err, command
    assert "--halls" in hub(capsys, "user", "list", "--config", str(halls.city), "--hall", "h01")[2]


def test_the_installed_command_line_takes_hall(halls: TwoHalls) -> None:
    done = subprocess.run([sys.executable, "-m", "hub.cli", "log", "verify", "--config", str(halls.city),
                           "--hall", "h02"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"日志完整 log verified: {ENTRIES['h02']} entries" in done.stdout
