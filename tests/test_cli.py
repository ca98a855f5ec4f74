"""The command lines: key generation and config checks, as an installer uses them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from wire.envelope import load_private_key, public_hex_of

ROOT = Path(__file__).resolve().parents[1]


def run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)


@pytest.mark.parametrize("module", ["edge_agent.cli", "hub.cli"])
def test_keygen_prints_a_matching_pair(module: str) -> None:
    result = run(module, "keygen")
    assert result.returncode == 0
    found = dict(re.findall(r'^(private_key|public_key) = "([0-9a-f]{64})"$', result.stdout, re.M))
    assert public_hex_of(load_private_key(found["private_key"])) == found["public_key"]
    assert run(module, "keygen").stdout != result.stdout


def test_hub_check_reports_a_missing_key_file_by_name() -> None:
    config = ROOT / "config" / "hub.example.toml"
    result = run("hub.cli", "check", "--config", str(config))
    assert result.returncode == 2
    assert f"{config}: private_key_file: /etc/hall/hub.key does not exist" in result.stderr


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
