"""Complete provenance (issue 11): every manual entry names its author (`--by`, the OS user and
host; the console's logged-in user), operators sign with their own keys (`--sign-with`), `log verify`
and `hall-verify` check those signatures against the operator keys in force, and the roster is
versioned in the log: `roster apply` logs it, `hall-hub run` refuses a roster that is not logged."""

from __future__ import annotations

import getpass
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from test_log_export import Hall, caught, rechain
from test_store import KEYS, START, WINDOW, rating, sql

from hub import config as hub_config
from hub.audit import verify_log
from hub.cli import main
from hub.config import HubConfig
from hub.export import export_bundle
from hub.leave import record_leave
from hub.provenance import (
    Author,
    OperatorKey,
    OperatorKeyError,
    Provenance,
    cli_author,
    read_operator_key,
    web_author,
    write_operator_key,
)
from hub.roster_history import RosterHistory
from hub.roster_log import RosterNotLogged, apply_roster, config_problem, ensure_logged
from hub.rules.cases import case_id
from hub.store.schema import leaves
from hub.store.store import Store
from hub.store.users import add_user
from verifier.bundle import read_bundle
from verifier.check import check_bundle
from verifier.cli import main as verify_main
from wire.clock import FixedClock, SystemClock
from wire.envelope import canonical, generate_keypair, load_private_key

ROOT = Path(__file__).resolve().parents[1]
HUB = generate_keypair()
PASSWORD = "correct horse battery staple"


def write_config(folder: Path, url: str, operators: tuple[OperatorKey, ...] = (),
                 staff: tuple[str, ...] = ("S001",), device_key: str = WINDOW.public_hex,
                 grace: int = 5) -> Path:
    path = folder / "hub.toml"
    text = (f'hall = "h1"\nprivate_key = "{HUB.private_hex}"\n[store]\nurl = "{url}"\n'
            f'[broker]\nurl = "mqtt://127.0.0.1:9"\n[schedule]\ngrace_minutes = {grace}\n'
            f'[[devices]]\nid = "window1"\npublic_key = "{device_key}"\n')
    text += "".join(f'[[staff]]\nid = "{s}"\nname = "员工{s}"\nwindow = "w1"\n' for s in staff)
    text += "".join(f'[[operators]]\nname = "{o.name}"\npublic_key = "{o.public_hex}"\n' for o in operators)
    path.write_text(text, encoding="utf-8")
    return path


def hub(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def verify_cli(capsys: pytest.CaptureFixture[str], bundle: Path) -> tuple[int, str]:
    code = verify_main([str(bundle)])
    return code, capsys.readouterr().out


@dataclass
class Signed:
    """A store whose first roster (logged by the hub at its first start) lists operator 王主任, and a
    leave signed with his key."""

    config: HubConfig
    store: Store
    clock: FixedClock
    key: OperatorKey
    leave_seq: int


@pytest.fixture
def signed(tmp_path: Path, store_url: str) -> Iterator[Signed]:
    key = write_operator_key(tmp_path / "wang.key", "王主任")
    config = hub_config.load(write_config(tmp_path, store_url, (key,)))
    clock = FixedClock(START)
    store = Store(store_url, clock)
    ensure_logged(config, store)
    clock.advance(60)
    as_wang = store.authored(Provenance(cli_author("王主任"), key))
    _, entry = record_leave(config, as_wang, "S001", "2026-11-25", "2026-11-25", "主任", "事假")
    yield Signed(config, store, clock, key, entry.seq)
    store.close()


# --- authors --------------------------------------------------------------------------------------


def test_a_cli_entry_names_by_os_user_host_and_a_console_entry_its_user(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'hub.db'}")
    code, out, err = hub(capsys, "leave", "add", "--config", str(config), "--staff", "S001", "--from",
                         "2026-11-25", "--to", "2026-11-25", "--approver", "主任", "--by", "王主任")
    assert code == 0, err
    store = Store(f"sqlite:///{tmp_path / 'hub.db'}", SystemClock(START.tzinfo), create=False)
    web = store.authored(Provenance(web_author("zhang")))
    record_leave(hub_config.load(config), web, "S001", "2026-11-26", "2026-11-26", "主任", "", by="zhang")
    cli_entry, web_entry = list(store.entries("leave"))
    assert cli_entry.data["author"] == {"by": "王主任", "os_user": getpass.getuser(),
                                        "host": socket.gethostname(), "via": "cli"}
    assert web_entry.data["author"] == {"by": "zhang", "os_user": None, "host": None, "via": "web"}
    assert [item.approver for item in store.leaves()] == ["主任", "主任"]  # readers unaffected
    store.close()


def test_every_manual_command_names_its_author(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    config = write_config(tmp_path, url)
    store = Store(url, FixedClock(START))
    bad, appealed = rating(1, level=1), rating(2, level=1)
    store.ingest([bad, appealed])
    add_user(store, "zhang", "manager", None, PASSWORD, "setup")
    store.close()
    code, out, err = hub(capsys, "complaints", "add", "--config", str(config), "--kind", "oral", "--window",
                         "w1", "--by", "李四", "--text", "态度差", "--contact", "138", "--json")
    assert code == 0, err
    commands = [
        ("roster", "apply", "--by", "局长"),
        ("leave", "add", "--staff", "S001", "--from", "2026-11-25", "--to", "2026-11-25",
         "--approver", "主任", "--by", "王主任"),
        ("complaints", "close", "--id", json.loads(out)["id"], "--by", "李四", "--result", "已答复"),
        ("complaints", "list", "--contacts", "--by", "主任"),
        ("ratings", "appeal", "--rating", appealed.id, "--by", "员工", "--reason", "误按"),
        ("ratings", "decide", "--rating", appealed.id, "--by", "主任", "--accept", "--note", "属实"),
        ("cases", "close", "--case", case_id(bad.id), "--by", "主任", "--result", "已回访"),
        ("user", "token", "--name", "zhang", "--by", "管理员"),
        ("user", "disable", "--name", "zhang", "--by", "管理员"),
    ]
    for command in commands:
        code, _, err = hub(capsys, *command[:2], "--config", str(config), *command[2:])
        assert code == 0, (command, err)
    store = Store(url, FixedClock(START), create=False)
    authors = {e.kind: e.data["author"]["by"] for e in store.audit() if e.kind not in ("event", "user_add")}
    assert authors == {"roster": "局长", "leave": "王主任", "complaint_add": "李四",
                       "complaint_close": "李四", "personal_view": "主任", "rating_appeal": "员工",
                       "appeal_decision": "主任",
                       "case_closed": "主任", "token_issue": "管理员", "user_disable": "管理员"}
    report = verify_log(store, KEYS)
    assert report.ok and report.provenance is not None
    assert (report.provenance.manual, report.provenance.unsigned, report.provenance.no_author) == (11, 11, 1)
    store.close()


def test_a_manual_command_needs_by(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'hub.db'}")
    with pytest.raises(SystemExit) as exited:
        hub(capsys, "leave", "add", "--config", str(config), "--staff", "S001", "--from", "2026-11-25",
            "--to", "2026-11-25", "--approver", "主任")
    assert exited.value.code == 2 and "--by" in capsys.readouterr().err


# --- operator keys and signatures -------------------------------------------------------------------


def test_operator_keygen_writes_a_private_file_and_prints_the_public_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "wang.key"
    code, printed, _ = hub(capsys, "operator", "keygen", "--out", str(out), "--name", "王主任")
    assert code == 0 and out.stat().st_mode & 0o777 == 0o600
    assert printed.startswith('[[operators]]\nname = "王主任"\npublic_key = "')
    assert read_operator_key(out).public_hex in printed
    again = hub(capsys, "operator", "keygen", "--out", str(out), "--name", "王主任")
    assert again[0] == 2 and "not overwritten" in again[2]
    out.chmod(0o644)
    with pytest.raises(OperatorKeyError, match="chmod 600"):
        read_operator_key(out)


def test_signing_with_the_cli_is_refused_until_the_key_is_logged(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    key = write_operator_key(tmp_path / "wang.key", "王主任")
    other = write_operator_key(tmp_path / "li.key", "李")
    config = write_config(tmp_path, url)
    leave = ("leave", "add", "--config", str(config), "--staff", "S001", "--from", "2026-11-25", "--to",
             "2026-11-25", "--approver", "主任", "--by", "王主任", "--sign-with")
    assert hub(capsys, "roster", "apply", "--config", str(config), "--by", "王主任")[0] == 0
    code, _, err = hub(capsys, *leave, str(tmp_path / "wang.key"))
    assert code == 2 and "not in force" in err and "roster apply" in err
    write_config(tmp_path, url, (key, other))
    code, out, _ = hub(capsys, "roster", "apply", "--config", str(config), "--by", "王主任")
    assert code == 0 and "operators added: 李" in out and "operators added: 王主任" in out
    code, _, err = hub(capsys, *leave, str(tmp_path / "li.key"))
    assert code == 2 and "holds the key of '李', not of --by '王主任'" in err
    code, out, err = hub(capsys, *leave, str(tmp_path / "wang.key"))
    assert code == 0, err
    code, out, err = hub(capsys, "log", "verify", "--config", str(config))
    assert code == 0, err
    assert "3 manual entries: 1 经操作员签名 signed by operators (王主任 1), 2 未签名 unsigned" in out
    assert hub(capsys, "log", "export", "--config", str(config), "--out", str(tmp_path / "b"))[0] == 0
    code, out = verify_cli(capsys, tmp_path / "b")
    assert code == 0 and "3 manual entries: 1 经操作员签名 signed by operators (王主任 1)" in out
    assert "0 签名无效 invalid" in out


def test_a_signed_leave_verifies_in_the_store_and_the_bundle(signed: Signed, tmp_path: Path) -> None:
    report = verify_log(signed.store, KEYS)
    assert report.ok and report.provenance is not None, report.problem
    assert dict(report.provenance.signed) == {"王主任": 1}
    assert (report.provenance.manual, report.provenance.hub, report.provenance.invalid) == (1, 1, 0)
    entry = next(signed.store.entries("leave"))
    assert set(entry.data["signature"]) == {"key", "sig"}
    proof = check_bundle(read_bundle(export_bundle(signed.config, signed.store, tmp_path / "b").path))
    assert proof.problem is None and dict(proof.provenance.signed) == {"王主任": 1}


def _edit_leave(url: str, change: Any) -> None:
    """Rewrite the leave's entry (and its table row) and recompute the whole chain."""
    def rows(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for row in found:
            if row["kind"] == "leave":
                row["data"] = canonical(change(json.loads(row["data"]))).decode()
        return found
    rechain(url, rows)


def test_attack_an_edited_approver_of_a_signed_leave_fails_its_signature(signed: Signed, tmp_path: Path,
                                                                        store_url: str) -> None:
    _edit_leave(store_url, lambda data: {**data, "approver": "局长"})
    sql(store_url, lambda c: c.execute(update(leaves).values(approver="局长")))
    caught(Hall(signed.config, signed.store, signed.clock), tmp_path,
           f"entry {signed.leave_seq}: 操作员签名无效 the signature of operator 王主任")


def test_attack_a_signed_leave_given_to_another_author_fails(signed: Signed, tmp_path: Path,
                                                             store_url: str) -> None:
    _edit_leave(store_url, lambda data: {**data, "author": {**data["author"], "by": "李"}})
    caught(Hall(signed.config, signed.store, signed.clock), tmp_path,
           f"entry {signed.leave_seq}: 操作员签名无效")


def test_a_stripped_signature_leaves_an_unsigned_entry_counted_not_failed(signed: Signed,
                                                                          store_url: str) -> None:
    """The limit the README names: removing the signature (and recomputing the chain) makes the entry
    unsigned, which is shown (未签名 unsigned), not a failure."""
    _edit_leave(store_url, lambda data: {k: v for k, v in data.items() if k != "signature"})
    report = verify_log(signed.store, KEYS)
    assert report.ok and report.provenance is not None
    assert (report.provenance.unsigned, sum(report.provenance.signed.values())) == (1, 0)


def test_a_key_not_in_force_and_a_forged_hub_author(signed: Signed, store_url: str) -> None:
    stranger = OperatorKey("王主任", load_private_key(generate_keypair().private_hex))
    signed.clock.advance(60)
    outside = signed.store.authored(Provenance(cli_author("王主任"), stranger))
    record_leave(signed.config, outside, "S001", "2026-11-26", "2026-11-26", "主任", "")
    report = verify_log(signed.store, KEYS)
    assert report.ok and report.provenance is not None and report.provenance.unknown_key == 1
    assert "1 未知密钥 signed with a key not in force" in report.provenance.line()
    signed.clock.advance(60)
    forged = signed.store.authored(Provenance(Author("hall-hub", "hub")))
    entry = forged.append("case_closed", {"case": "C-1", "closed_by": "主任", "result": "已回访"}, ref="C-1")
    report = verify_log(signed.store, KEYS)
    assert not report.ok and f"entry {entry.seq}: 中心不能代人记录" in str(report.problem)


# --- the roster in the log -------------------------------------------------------------------------


def test_the_first_start_logs_the_roster_as_the_hub_and_reports_read_it(tmp_path: Path,
                                                                        store_url: str) -> None:
    config = hub_config.load(write_config(tmp_path, store_url))
    store = Store(store_url, FixedClock(START))
    ensure_logged(config, store)
    ensure_logged(config, store)  # the same roster: nothing more
    (first,) = store.entries("roster")
    assert first.data["author"]["via"] == "hub" and "operators" not in first.data
    assert [m.id for m in RosterHistory(config, store).on(START.date()).config.staff] == ["S001"]
    report = verify_log(store, KEYS)
    assert report.ok and report.provenance is not None
    assert (report.provenance.hub, report.provenance.manual) == (1, 0)
    store.close()


def test_an_unlogged_roster_edit_is_refused_at_start_and_named_by_log_verify(
        tmp_path: Path, store_url: str) -> None:
    path = write_config(tmp_path, store_url)
    store = Store(store_url, FixedClock(START))
    ensure_logged(hub_config.load(path), store)
    edited = hub_config.load(write_config(tmp_path, store_url, staff=("S001", "S002"),
                                          device_key=generate_keypair().public_hex, grace=10))
    with pytest.raises(RosterNotLogged) as refused:
        ensure_logged(edited, store, str(path))
    for named in ("staff added: S002", "device key changed: window1", "the schedule changed: grace_minutes",
                  f"hall-hub roster apply --config {path} --by NAME"):
        assert named in str(refused.value)
    problem = config_problem(edited, store)
    assert problem is not None and "roster in hub.toml is not the one in the log (entry #1)" in problem
    proof = check_bundle(read_bundle(export_bundle(edited, store, tmp_path / "edited").path))
    assert proof.problem is not None and "without `hall-hub roster apply`" in proof.problem
    entry, changed = apply_roster(edited, store.authored(Provenance(cli_author("局长"))))
    assert entry is not None and entry.data["author"]["by"] == "局长" and len(changed) == 3
    ensure_logged(edited, store)  # starts now
    assert config_problem(edited, store) is None and apply_roster(edited, store) == (None, [])
    applied = check_bundle(read_bundle(export_bundle(edited, store, tmp_path / "applied").path))
    assert applied.problem is None, applied.problem
    store.close()


def test_hall_hub_run_refuses_then_starts_after_roster_apply(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    config = write_config(tmp_path, url)
    assert hub(capsys, "roster", "apply", "--config", str(config), "--by", "局长")[0] == 0
    write_config(tmp_path, url, staff=("S001", "S002"))
    run = subprocess.run([sys.executable, "-m", "hub.cli", "run", "--config", str(config)],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert run.returncode == 2, run.stderr
    assert "拒绝启动 refused to start" in run.stderr and "staff added: S002" in run.stderr
    code, _, err = hub(capsys, "log", "verify", "--config", str(config))
    assert code == 1 and "roster in hub.toml is not the one in the log" in err and "S002" in err
    code, out, _ = hub(capsys, "roster", "apply", "--config", str(config), "--by", "局长")
    assert code == 0 and "roster logged as entry #2: 人员新增 staff added: S002" in out
    store = Store(url, FixedClock(START), create=False)
    ensure_logged(hub_config.load(config), store)  # the start-up check `run` makes passes now
    store.close()
    code, out, _ = hub(capsys, "log", "verify", "--config", str(config))
    assert code == 0 and "2 manual entries" in out


def test_every_kind_of_entry_is_a_device_s_the_hub_s_or_a_person_s() -> None:
    """A new kind must be placed (wire/provenance.py), or the verifiers would neither count nor check it."""
    from hub.domain import LOG_KINDS
    from wire.provenance import HUB_KINDS, MANUAL_KINDS

    assert set(LOG_KINDS) - MANUAL_KINDS - HUB_KINDS == {"event", "quarantine"}
    assert not MANUAL_KINDS & HUB_KINDS
