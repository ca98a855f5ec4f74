"""Edge agent layers on their own: config validation and the durable outbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent import config as edge_config
from edge_agent.outbox import Outbox
from wire.configfile import ConfigError
from wire.envelope import generate_keypair, load_private_key, seal

ROOT = Path(__file__).resolve().parents[1]
KEYS = generate_keypair()
GOOD = f"""
hall = "h1"
device = "entrance"
private_key = "{KEYS.private_hex}"
hub_public_key = "{KEYS.public_hex}"
[outbox]
path = "outbox.db"
[[units]]
id = "door"
kind = "card"
driver = "rdm6300"
port = "/dev/hall-card"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_config_with_defaults(tmp_path: Path) -> None:
    config = edge_config.load(write(tmp_path, GOOD))
    assert config.units[0].baud == 9600
    assert config.outbox.path == tmp_path / "outbox.db"  # relative to the config file
    assert config.broker.host == "127.0.0.1" and config.broker.port == 1883
    assert config.timezone == "Asia/Shanghai"


@pytest.mark.parametrize("change, key", [
    (lambda t: t.replace('device = "entrance"', 'device = "entrance"\ncolour = "red"'), "colour"),
    (lambda t: t.replace('driver = "rdm6300"', 'driver = "acme9000"'), "units[0].driver"),
    (lambda t: t.replace('port = "/dev/hall-card"', 'port = "/dev/hall-card"\nbaud = "fast"'),
     "units[0].baud"),
    (lambda t: t.replace('kind = "card"', 'kind = "toaster"'), "units[0]"),
    (lambda t: t.replace("[outbox]", '[broker]\nurl = "http://x"\n[outbox]'), "broker.url"),
    (lambda t: t.replace('hall = "h1"', 'hall = "Hall One"'), "hall"),
    (lambda t: t.replace(f'private_key = "{KEYS.private_hex}"', 'private_key = "abc"'), "private_key"),
    (lambda t: t.replace(f'private_key = "{KEYS.private_hex}"\n', ""), "give exactly one"),
    (lambda t: t + '[[units]]\nid = "door"\nkind = "card"\ndriver = "rdm6300"\nport = "/dev/x"\n',
     "appears twice"),
])
def test_bad_config_names_file_and_key(tmp_path: Path, change, key: str) -> None:
    path = write(tmp_path, change(GOOD))
    with pytest.raises(ConfigError) as caught:
        edge_config.load(path)
    message = str(caught.value)
    assert str(path) in message and key in message, message


def test_unknown_driver_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="rdm6300"):
        edge_config.load(write(tmp_path, GOOD.replace('driver = "rdm6300"', 'driver = "acme"')))


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "\n[[units]\n")
    with pytest.raises(ConfigError, match="not valid TOML") as caught:
        edge_config.load(path)
    assert str(path) in str(caught.value)


def test_example_config_validates() -> None:
    from wire.configfile import load

    config = load(ROOT / "config" / "edge.example.toml", edge_config.EdgeConfig)
    assert config.units[0].driver == "rdm6300"


def _putter(seq_ts: str = "2026-11-24T08:00:00.000+08:00"):
    key = load_private_key(KEYS.private_hex)
    return lambda seq: seal(key, hall="h1", device="entrance", seq=seq, ts=seq_ts, type="clock",
                            body={"method": "card", "card": "0A004A7B2C"})


def test_outbox_numbers_stores_and_commits(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    sent = [outbox.put(_putter()) for _ in range(5)]
    assert [e.seq for e in sent] == [1, 2, 3, 4, 5]
    assert [p.payload for p in outbox.pending()] == [e.raw for e in sent]
    assert outbox.commit(3, retained=False) == 3
    assert [p.seq for p in outbox.pending()] == [4, 5]
    outbox.close()
    reopened = Outbox(tmp_path / "o.db")  # numbering survives a restart
    assert reopened.put(_putter()).seq == 6
    assert reopened.commit(6, retained=False) == 3 and reopened.size() == 0
    assert reopened.put(_putter()).seq == 7  # and keeps increasing when empty


def test_outbox_distrusts_stale_retained_watermarks(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    for _ in range(3):
        outbox.put(_putter())
    assert outbox.commit(500, retained=True) == 0  # left by the hub before this outbox existed
    assert outbox.commit(2, retained=True) == 0  # retained: not trusted before a live one
    assert outbox.commit(500, retained=False) == 0  # beyond what this outbox issued
    assert outbox.commit(1, retained=False) == 1
    assert outbox.commit(2, retained=True) == 1  # trusted once a live watermark was seen
    assert outbox.size() == 1


def test_outbox_rolls_back_a_failed_put(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")

    def broken(seq: int):
        raise RuntimeError("signing failed")

    with pytest.raises(RuntimeError):
        outbox.put(broken)
    assert outbox.size() == 0 and outbox.put(_putter()).seq == 1


WINDOW_UNITS = """
[[units]]
id = "eval"
kind = "evaluator"
driver = "buttonbus"
port = "/dev/hall-eval"
window = "03"
[[units]]
id = "bus1"
kind = "bus"
driver = "buttonbus"
port = "/dev/hall-rs485"
devices = [{addr = 1, kind = "evaluator", window = "04"},
           {addr = 2, kind = "desk", window = "04", desk = "d04"}]
"""


def test_window_units_and_their_devices(tmp_path: Path) -> None:
    config = edge_config.load(write(tmp_path, GOOD + WINDOW_UNITS))
    devices = {(d.unit, d.kind, d.window, d.desk) for d in config.window_devices()}
    assert devices == {("eval", "evaluator", "03", "eval"), ("bus1-1", "evaluator", "04", "bus1-1"),
                       ("bus1-2", "desk", "04", "d04")}
    assert config.window.invite_seconds == 10 and config.window.away_minutes["meeting"] == 60


@pytest.mark.parametrize("change, message", [
    (lambda t: t.replace('{addr = 2, kind = "desk"', '{addr = 1, kind = "desk"'),
     "units[2]: Value error, devices: an address appears twice"),
    (lambda t: t.replace('window = "03"', 'window = "04"'), "window 04 has two evaluators"),
    (lambda t: t.replace('kind = "desk", window = "04"', 'kind = "printer", window = "04"'),
     "units[2].devices[1].kind"),
    (lambda t: t + '[window]\naway_minutes = {nap = 5}\n', "window.away_minutes"),
])
def test_bad_window_units(tmp_path: Path, change, message: str) -> None:
    path = write(tmp_path, change(GOOD + WINDOW_UNITS))
    with pytest.raises(ConfigError) as caught:
        edge_config.load(path)
    assert message in str(caught.value) and str(path) in str(caught.value), str(caught.value)


def test_window_example_config_validates() -> None:
    from wire.configfile import load

    config = load(ROOT / "config" / "edge-window.example.toml", edge_config.EdgeConfig)
    assert len(config.window_devices()) == 5
