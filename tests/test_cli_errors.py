"""A user's mistakes at the command line: one clear line on stderr, exit code 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hub import config as hub_config
from hub.faces import ENROLL_KIND
from hub.roster_history import roster_record
from hub.store.store import Store
from wire.clock import FixedClock
from wire.envelope import generate_keypair

ROOT = Path(__file__).resolve().parents[1]
SIDES = {"edge_agent.cli": "hall-edge", "hub.cli": "hall-hub"}
HUB_KEY = generate_keypair()


def run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def refused(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused command printed; it must have exited 2 without a traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def config_with_key_file(module: str, folder: Path, key_file: str) -> Path:
    """A config of the CLI's side whose private key is in `key_file`, otherwise valid."""
    if module == "hub.cli":
        config = folder / "hub.toml"
        config.write_text(f'hall = "h1"\nprivate_key_file = "{key_file}"\n', encoding="utf-8")
    else:
        config = folder / "edge.toml"
        config.write_text(f'hall = "h1"\ndevice = "entrance"\nprivate_key_file = "{key_file}"\n'
                          f'hub_public_key = "{HUB_KEY.public_hex}"\n[outbox]\npath = "o.db"\n',
                          encoding="utf-8")
    return config


# --- key files --------------------------------------------------------------------------------


@pytest.mark.parametrize("module", SIDES)
def test_check_refuses_a_key_file_holding_keygen_printed_output(module: str, tmp_path: Path) -> None:
    key_file = tmp_path / "box.key"
    key_file.write_text(run(module, "keygen").stdout, encoding="ascii")  # `hall-edge keygen > box.key`
    config = config_with_key_file(module, tmp_path, "box.key")
    line = refused(run(module, "check", "--config", str(config)))
    assert f"{config}: private_key_file: {key_file}:" in line
    assert f"{SIDES[module]} keygen --out FILE" in line


@pytest.mark.parametrize("module", SIDES)
@pytest.mark.parametrize("content", [
    b"", b"9D61B19DEFFD5A60BA844AF492EC2CC44449C5697B326919703BAC031CAE7F60\n",
    b"9d61b19deffd5a60ba844af492ec2cc4\n", b"\xff\xfe\x00garbage",
], ids=["empty", "uppercase", "short", "binary"])
def test_check_refuses_a_key_file_that_is_not_64_lowercase_hex(module: str, content: bytes,
                                                                tmp_path: Path) -> None:
    key_file = tmp_path / "box.key"
    key_file.write_bytes(content)
    config = config_with_key_file(module, tmp_path, "box.key")
    line = refused(run(module, "check", "--config", str(config)))
    assert line.endswith(f"{config}: private_key_file: {key_file}: must hold 64 lowercase hex characters "
                         f"(the private key alone; make it with {SIDES[module]} keygen --out FILE)")


@pytest.mark.parametrize("module", SIDES)
def test_check_accepts_a_key_file_with_surrounding_whitespace(module: str, tmp_path: Path) -> None:
    (tmp_path / "box.key").write_text(f"\n  {generate_keypair().private_hex}  \n\n", encoding="ascii")
    (tmp_path / "box.key").chmod(0o600)
    config = config_with_key_file(module, tmp_path, "box.key")
    result = run(module, "check", "--config", str(config))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("module", SIDES)
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_file_others_may_read_is_refused(module: str, mode: int, tmp_path: Path) -> None:
    key_file = tmp_path / "box.key"
    key_file.write_text(generate_keypair().private_hex + "\n", encoding="ascii")
    key_file.chmod(mode)
    config = config_with_key_file(module, tmp_path, "box.key")
    line = refused(run(module, "check", "--config", str(config)))
    assert f"{key_file}: mode {mode:04o} lets others read the private key; `chmod 600 {key_file}`" in line


@pytest.mark.parametrize("module", SIDES)
def test_a_key_file_that_is_a_directory_or_missing(module: str, tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    config = config_with_key_file(module, tmp_path, "keys")
    line = refused(run(module, "check", "--config", str(config)))
    assert f"{config}: private_key_file: {tmp_path / 'keys'}: cannot read: Is a directory" in line
    config = config_with_key_file(module, tmp_path, "gone.key")
    line = refused(run(module, "check", "--config", str(config)))
    assert f"{config}: private_key_file: {tmp_path / 'gone.key'} does not exist" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
@pytest.mark.parametrize("module", SIDES)
def test_an_unreadable_key_file(module: str, tmp_path: Path) -> None:
    key_file = tmp_path / "box.key"
    key_file.write_text(generate_keypair().private_hex + "\n", encoding="ascii")
    key_file.chmod(0)
    config = config_with_key_file(module, tmp_path, "box.key")
    line = refused(run(module, "check", "--config", str(config)))
    assert f"{config}: private_key_file: {key_file}: cannot read: Permission denied" in line


# --- config files -----------------------------------------------------------------------------


@pytest.mark.parametrize("module", SIDES)
def test_config_naming_a_directory(module: str, tmp_path: Path) -> None:
    line = refused(run(module, "check", "--config", str(tmp_path)))
    assert f"{tmp_path}: is a directory, not a config file" in line


@pytest.mark.parametrize("module", SIDES)
def test_config_that_is_not_utf8(module: str, tmp_path: Path) -> None:
    config = tmp_path / "hall.toml"
    config.write_bytes('hall = "大厅"\n'.encode("gb18030"))
    line = refused(run(module, "check", "--config", str(config)))
    assert f"{config}: not UTF-8 text" in line


def test_a_string_is_not_taken_for_a_number(tmp_path: Path) -> None:
    config = tmp_path / "edge.toml"
    config.write_text(f'hall = "h1"\ndevice = "entrance"\nprivate_key = "{generate_keypair().private_hex}"\n'
                      f'hub_public_key = "{HUB_KEY.public_hex}"\n[outbox]\npath = "o.db"\n'
                      '[[units]]\nid = "door"\nkind = "card"\ndriver = "rdm6300"\nport = "/dev/x"\n'
                      'baud = "9600"\n', encoding="utf-8")
    line = refused(run("edge_agent.cli", "check", "--config", str(config)))
    assert line.endswith(f"{config}: units[0].baud: Input should be a valid integer")


def test_a_string_is_not_taken_for_a_boolean(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(f'hall = "h1"\nprivate_key = "{HUB_KEY.private_hex}"\n[face]\nrequire_live = "no"\n',
                      encoding="utf-8")
    line = refused(run("hub.cli", "check", "--config", str(config)))
    assert line.endswith(f"{config}: face.require_live: Input should be a valid boolean")


# --- output into a closed pipe ----------------------------------------------------------------


def test_log_show_into_a_reader_that_stops_after_one_line(tmp_path: Path) -> None:
    """`hall-hub log show --config F | head -1` ends quietly."""
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    store = Store(url, FixedClock(datetime(2026, 11, 24, 8, 0, tzinfo=UTC)))
    for n in range(3000):
        store.append("roster", {"staff": [f"S{n:04d}"], "note": "a line of the audit log " * 3})
    store.close()
    config = tmp_path / "hub.toml"
    config.write_text(f'hall = "h1"\nprivate_key = "{HUB_KEY.private_hex}"\n[store]\nurl = "{url}"\n',
                      encoding="utf-8")
    with subprocess.Popen([sys.executable, "-m", "hub.cli", "log", "show", "--config", str(config)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline()
        proc.stdout.close()
        stderr = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 1
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


# --- face enrollment ---------------------------------------------------------------------------


@pytest.mark.face
def test_enroll_refuses_a_photo_without_a_face_a_non_image_and_a_missing_file(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(f'hall = "h1"\nprivate_key = "{HUB_KEY.private_hex}"\n[store]\nurl = "sqlite:///hub.db"\n'
                      '[[staff]]\nid = "S001"\nname = "张伟"\n', encoding="utf-8")
    wall = tmp_path / "wall.png"
    Image.fromarray(np.full((200, 200, 3), 128, dtype=np.uint8)).save(wall)
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo\n", encoding="utf-8")
    missing = tmp_path / "missing.jpg"
    for photo, problem in ((wall, "no face found"), (text, "not an image"), (missing, "no such file")):
        line = refused(run("hub.cli", "staff", "enroll", "--config", str(config), "--staff", "S001",
                           "--by", "管理员", "--no-publish", str(photo)))
        assert f"{photo}: " in line and problem in line, line
    store = Store(f"sqlite:///{tmp_path / 'hub.db'}", FixedClock(datetime(2026, 11, 24, tzinfo=UTC)))
    assert list(store.entries(ENROLL_KIND)) == []
    store.close()


def test_inspector_commands_need_no_private_key(tmp_path: Path) -> None:
    """An inspector's copy: the store and a config naming no key, or a key file they do not have."""
    config = tmp_path / "hub.toml"
    config.write_text('hall = "h1"\n[store]\nurl = "sqlite:///hub.db"\n', encoding="utf-8")
    Store(f"sqlite:///{tmp_path / 'hub.db'}", FixedClock(datetime(2026, 11, 24, tzinfo=UTC))).append(
        "roster", roster_record(hub_config.load(config)))  # `log verify` compares it with hub.toml's
    for key_line in ("", 'private_key_file = "/nonexistent/hub.key"\n'):
        config.write_text(f'hall = "h1"\n{key_line}[store]\nurl = "sqlite:///hub.db"\n', encoding="utf-8")
        for args in (("log", "verify"), ("attendance", "--date", "2026-11-24"), ("quarantine",)):
            result = run("hub.cli", *args, "--config", str(config))
            assert result.returncode == 0, (args, result.stderr)
    config.write_text('hall = "h1"\n[store]\nurl = "sqlite:///hub.db"\n', encoding="utf-8")
    assert "read-only" in run("hub.cli", "check", "--config", str(config)).stdout
    line = refused(run("hub.cli", "send", "sync", "--device", "entrance", "--config", str(config)))
    assert "signs as the hub: give private_key or private_key_file" in line


def test_a_device_named_hub_and_a_relative_ca_file(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(f'hall = "h1"\n[[devices]]\nid = "hub"\npublic_key = "{HUB_KEY.public_hex}"\n',
                      encoding="utf-8")
    assert "'hub' is the hub's own broker user" in refused(run("hub.cli", "check", "--config", str(config)))
    from edge_agent import config as edge_config

    edge = tmp_path / "edge.toml"
    edge.write_text(f'hall = "h1"\ndevice = "entrance"\nprivate_key = "{HUB_KEY.private_hex}"\n'
                    f'hub_public_key = "{HUB_KEY.public_hex}"\n[broker]\nurl = "mqtts://hub:8883"\n'
                    'ca_file = "ca.pem"\n[outbox]\npath = "o.db"\n', encoding="utf-8")
    assert edge_config.load(edge).broker.ca_file == tmp_path / "ca.pem"
