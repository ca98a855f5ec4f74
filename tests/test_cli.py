"""The command lines: key generation and config checks, as an installer uses them."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from hub.config import HubConfig
from wire.configfile import EXAMPLE_PUBLIC_KEYS
from wire.envelope import generate_keypair, load_private_key, public_hex_of

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "config").glob("*.toml"))
EXAMPLE_KEY_WARNING = "示例密钥 example key: make your own with"


def run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)


def cli_for(config: Path) -> str:
    """The CLI that checks an example config, chosen by its file name."""
    return "hub.cli" if config.name.startswith("hub") else "edge_agent.cli"


def public_of_key_file(path: Path) -> str:
    return public_hex_of(load_private_key(path.read_text(encoding="ascii").strip()))


@pytest.mark.parametrize("module", ["edge_agent.cli", "hub.cli"])
def test_keygen_prints_a_matching_pair(module: str) -> None:
    result = run(module, "keygen")
    assert result.returncode == 0
    found = dict(re.findall(r'^(private_key|public_key) = "([0-9a-f]{64})"$', result.stdout, re.M))
    assert public_hex_of(load_private_key(found["private_key"])) == found["public_key"]
    assert run(module, "keygen").stdout != result.stdout


@pytest.mark.parametrize("module", ["edge_agent.cli", "hub.cli"])
def test_keygen_out_writes_the_private_key_alone_readable_by_its_owner(module: str, tmp_path: Path) -> None:
    key_file = tmp_path / "box.key"
    result = run(module, "keygen", "--out", str(key_file))
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"[0-9a-f]{64}\n", key_file.read_text(encoding="ascii"))
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    printed = re.findall(r'^public_key = "([0-9a-f]{64})"$', result.stdout, re.M)
    assert printed == [public_of_key_file(key_file)]
    assert "private_key" not in result.stdout


@pytest.mark.parametrize("module", ["edge_agent.cli", "hub.cli"])
def test_keygen_out_never_overwrites_a_file(module: str, tmp_path: Path) -> None:
    key_file = tmp_path / "box.key"
    key_file.write_text("the key in use\n", encoding="ascii")
    result = run(module, "keygen", "--out", str(key_file))
    assert result.returncode == 2
    assert f"{key_file}: already exists" in result.stderr and "Traceback" not in result.stderr
    assert key_file.read_text(encoding="ascii") == "the key in use\n"


def test_hub_check_reports_a_missing_key_file_by_name(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text('hall = "h1"\nprivate_key_file = "keys/hub.key"\n', encoding="utf-8")
    result = run("hub.cli", "check", "--config", str(config))
    assert result.returncode == 2
    assert f"{config}: private_key_file: {tmp_path / 'keys' / 'hub.key'} does not exist" in result.stderr


@pytest.mark.parametrize("config", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_config_passes_check_with_a_warning_on_its_example_key(config: Path) -> None:
    result = run(cli_for(config), "check", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout
    assert EXAMPLE_KEY_WARNING in result.stderr


def test_the_examples_are_one_consistent_set_of_keys() -> None:
    hub = tomllib.loads((ROOT / "config" / "hub.example.toml").read_text(encoding="utf-8"))
    keys = {"hub": public_hex_of(load_private_key(hub["private_key"]))}
    for config in EXAMPLES:
        edge = tomllib.loads(config.read_text(encoding="utf-8"))
        if "device" in edge:
            assert edge["hub_public_key"] == keys["hub"], config.name
            keys[edge["device"]] = public_hex_of(load_private_key(edge["private_key"]))
    assert set(keys) == {"hub", "entrance", "win03"}
    assert frozenset(keys.values()) == EXAMPLE_PUBLIC_KEYS
    devices = {device["id"]: device["public_key"] for device in hub["devices"]}
    assert devices == {"entrance": keys["entrance"], "win03": keys["win03"]}


def test_the_hub_example_shows_every_section() -> None:
    hub = tomllib.loads((ROOT / "config" / "hub.example.toml").read_text(encoding="utf-8"))
    assert set(HubConfig.model_fields) - {"private_key_file", "operators"} <= set(hub)  # those: commented
    assert "# [[operators]]" in (ROOT / "config" / "hub.example.toml").read_text(encoding="utf-8")
    assert hub["reports"]["dir"] == "/var/lib/hall-hub/reports"
    assert "StateDirectory=hall-hub" in (ROOT / "config" / "systemd" / "hall-hub.service").read_text()


def test_udev_rules_name_every_port_the_examples_use() -> None:
    rules = (ROOT / "config" / "udev" / "99-hall-serial.rules").read_text(encoding="utf-8")
    active = [line for line in rules.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    named = {name for line in active for name in re.findall(r'SYMLINK\+="([^"]+)"', line)}
    ports = {unit["port"] for config in EXAMPLES
             for unit in tomllib.loads(config.read_text(encoding="utf-8")).get("units", [])
             if "port" in unit}
    wanted = {port.removeprefix("/dev/") for port in ports if port.startswith("/dev/hall-")}
    assert wanted == {"hall-card", "hall-eval03", "hall-desk03", "hall-rs485"}
    assert wanted <= named, wanted - named
    assert any(re.search(r'KERNELS=="[0-9]+-[0-9.]+"', line) for line in active)  # pinned by USB port
    assert "udevadm info -a -n /dev/ttyUSB0" in rules


def test_edge_check_lists_every_problem(tmp_path: Path) -> None:
    config = tmp_path / "edge.toml"
    config.write_text('hall = "h1"\ndevice = "Entrance"\n[outbox]\npath = "o.db"\n'
                      '[[units]]\nid = "door"\nkind = "card"\ndriver = "acme"\nport = "/dev/x"\n')
    result = run("edge_agent.cli", "check", "--config", str(config))
    assert result.returncode == 2
    for key in ("device", "hub_public_key", "units[0].driver"):
        assert f"{config}: {key}:" in result.stderr, result.stderr


def test_edge_check_accepts_a_good_config(tmp_path: Path) -> None:
    key = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
    config = tmp_path / "edge.toml"
    config.write_text(f'hall = "h1"\ndevice = "entrance"\nprivate_key = "{key}"\n'
                      f'hub_public_key = "{key}"\n[outbox]\npath = "o.db"\n')
    result = run("edge_agent.cli", "check", "--config", str(config))
    assert result.returncode == 0 and "ok" in result.stdout
    assert EXAMPLE_KEY_WARNING not in result.stderr


@pytest.mark.face
def test_staff_identify_names_the_staff_member(tmp_path: Path) -> None:
    faces = ROOT.parent / "shared" / "faces"
    config = tmp_path / "hub.toml"
    config.write_text(f'hall = "h1"\nprivate_key = "{generate_keypair().private_hex}"\n'
                      '[store]\nurl = "sqlite:///hub.db"\n'
                      '[[staff]]\nid = "S001"\nname = "张伟"\nwindow = "01"\n', encoding="utf-8")
    photos = [str(p) for p in sorted((faces / "enroll" / "obama").iterdir())]
    enrolled = run("hub.cli", "staff", "enroll", "--config", str(config), "--staff", "S001",
                   "--by", "管理员", "--no-publish", *photos)
    assert enrolled.returncode == 0, enrolled.stderr
    probe = str(sorted((faces / "probe" / "obama").iterdir())[0])
    text = run("hub.cli", "staff", "identify", "--config", str(config), probe)
    assert text.returncode == 0 and f"{probe}: S001 张伟 distance" in text.stdout, text.stdout
    as_json = run("hub.cli", "staff", "identify", "--config", str(config), "--json", probe)
    assert [(f["staff"], f["name"]) for f in json.loads(as_json.stdout)] == [("S001", "张伟")]


@pytest.mark.parametrize("unit", ["hall-hub.service", "hall-edge.service"])
def test_systemd_units_are_hardened(unit: str) -> None:
    lines = set((ROOT / "config" / "systemd" / unit).read_text(encoding="utf-8").splitlines())
    assert {"UMask=0077", "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes"} <= lines
    assert any(line.startswith("StateDirectory=") for line in lines)  # the one writable place
