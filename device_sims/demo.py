"""`hall-sim demo`: a whole simulated hall day on one machine.

The hub (embedded amqtt broker, SQLite store, scheduler), the entrance edge agent with a simulated
RDM6300 card reader, and the window-box edge agent with two simulated RS-485 ButtonBus lines (six
windows, each an evaluator and a desk box) run as separate processes sharing a ScaledClock, so the
day from 08:10 to 17:45 plays in about a minute. Then it prints the day as an inspector reads it,
with the same commands an inspector would use. The broker takes logins only: `write_configs` makes
the passwd file and each box's password, as `hall-hub broker add-device` does, before the hub starts.

The hub serves its web console (`[web] listen` on a free port): the demo adds an inspector and a
manager account with generated passwords and prints the URL and both accounts before the day plays,
so a person can watch the board and the public display live. From a terminal (stdin a TTY) the day
starts after a short countdown, and when it is over `hall-hub web` keeps serving the demo's store
(its clock at the day's end) until Ctrl-C; otherwise the demo exits as soon as the report is printed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from device_sims.buttonbus import ButtonBox, PolledBusSim
from device_sims.camera import CameraSim
from device_sims.card import CardReaderSim
from device_sims.demo_hall import BUSES, DAY, address, end_of_day, script, start_of_day, write_configs
from device_sims.printer import PrinterSim
from hub import config as hub_config
from hub.commands import send
from hub.store.store import Store
from wire.clock import ScaledClock, start_clock

SPEED = 600.0  # one real second is ten hall minutes
KIND = {"evaluator": 1, "desk": 2}
PRINTER_COLUMNS = 48  # the entrance's simulated 80 mm receipt printer
ACCOUNTS = (("inspector", "inspector", "督查"), ("manager", "manager", "中心负责人"))  # name, role, 中文
COUNTDOWN_S = 15  # from a terminal: time to open the console before the day starts


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stored(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return int(conn.execute("SELECT count(*) FROM events WHERE type IN ('clock', 'rating', 'sign')"
                                    ).fetchone()[0])
    except sqlite3.Error:
        return 0


def run(workdir: Path) -> int:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    start = start_of_day()
    anchor = workdir / "clock.anchor"  # the hall clock stands at 08:10 until every process is ready
    clock = ScaledClock(start, SPEED, None, start.tzinfo, anchor_file=anchor)  # type: ignore[arg-type]
    reader = CardReaderSim()
    camera = CameraSim(fps=10).start()
    face = astronaut(workdir)
    buses = {bus: PolledBusSim([ButtonBox(addr, KIND[kind]) for addr, (kind, _, _) in devices.items()])
             for bus, devices in BUSES.items()}
    printer = PrinterSim(out=workdir / "printer", columns=PRINTER_COLUMNS)
    printer.start()
    web_port, terminal_port = free_port(), free_port()
    paths = write_configs(workdir, free_port(), reader.path, {b: sim.path for b, sim in buses.items()},
                          camera.url, web_port, printer.url, terminal_port)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    interactive = sys.stdin.isatty()

    def hub(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hub.cli", *args, "--config", str(paths["hub"]),
                               "--clock", clock.spec()], input=stdin,
                              capture_output=True, text=True, env=env, cwd=workdir, timeout=120)

    def spawn(module: str, config: Path) -> subprocess.Popen[bytes]:
        log = (workdir / f"{config.stem}.log").open("ab")
        return subprocess.Popen([sys.executable, "-m", module, "run", "--config", str(config),
                                 "--clock", clock.spec()], stdout=log, stderr=subprocess.STDOUT,
                                env=env, cwd=workdir)

    print(f"== 模拟大厅 simulated hall, {DAY}, clock x{SPEED:.0f}; files in {workdir}", flush=True)
    console_accounts(hub, f"http://127.0.0.1:{web_port}/", f"http://127.0.0.1:{terminal_port}/")
    leave = hub("leave", "add", "--staff", "S010", "--from", DAY, "--to", DAY, "--approver", "办公室主任",
                "--reason", "病假 sick leave", "--by", "办公室主任")
    print(leave.stdout.strip() or leave.stderr.strip())
    enrolled = hub("staff", "enroll", "--staff", "S001", "--by", "管理员", "--no-publish", str(face))
    print(f"{enrolled.stdout.strip() or enrolled.stderr.strip()} (scikit-image's astronaut)")
    processes = [spawn("hub.cli", paths["hub"])]
    hub_settings = hub_config.load(paths["hub"])
    invitations: list[str] = []

    def invite(window: str) -> None:
        """The hub's invitation, signed and published from here at once (a `hall-hub send` process
        takes seconds to start on a loaded machine: an hour of the hall's x600 day); its ack is
        read after the day."""
        invitations.append(send(hub_settings, clock, "windows", "invite",
                                {"window": window, "seconds": 5, "ticket": "A023"}))
        print(f"    sent invite {invitations[-1]}", flush=True)

    expected, acted = 0, False
    try:
        wait_ready(workdir / "hub.log", processes[0])
        processes += [spawn("edge_agent.cli", paths["entrance"]), spawn("edge_agent.cli", paths["windows"])]
        for process, name in zip(processes[1:], ("entrance", "windows"), strict=True):
            wait_ready(workdir / f"{name}.log", process)
        if interactive:
            print(f"  (the console is up: the day starts in {COUNTDOWN_S} s)", flush=True)
            time.sleep(COUNTDOWN_S)
        start_clock(anchor, delay=0.5)
        print("  (hub and both boxes ready; the hall clock starts)", flush=True)
        for step in script():
            time.sleep(clock.wall_seconds_until(step.at))
            print(f"  {step.at:%H:%M} {step.action:<7} {step.target:<10} "
                  f"{hex(step.value) if step.action == 'key' else step.value or '':<5} {step.note}",
                  flush=True)
            expected += play(step, reader, buses, invite, camera, face)
        deadline = time.monotonic() + 30
        while stored(workdir / "hub.db") < expected and time.monotonic() < deadline:
            time.sleep(0.2)
        for command_id in invitations:
            ack = invitation_ack(hub_settings.store.url, clock, command_id)
            print(f"  邀请 the hub's invitation {command_id}: "
                  f"{'no ack' if ack is None else 'ack ok=' + str(ack['ok'])}", flush=True)
        time.sleep(clock.wall_seconds_until(end_of_day()))
        time.sleep(3)  # one more scheduler pass after the daily close
        acted = manager_actions(hub, printer)  # the boxes still run: the entrance prints
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(30)
        reader.close()
        camera.close()
        for sim in buses.values():
            sim.close()
        printer.close()
    status = report(hub, workdir, acted)
    if interactive:
        serve_console(paths["hub"], workdir, env, web_port)
    return status


def console_accounts(hub, url: str, terminal_url: str) -> None:  # type: ignore[no-untyped-def]
    """An inspector and a manager with generated passwords, printed with the console's URL and the
    entrance terminal's page (the box's own screen)."""
    print(f"== 网页控制台 web console: {url}  (大厅看板 {url}board, 去向显示牌 {url}display)")
    print(f"== 入口终端 entrance terminal: {terminal_url}  (the entrance box's own screen: taps and faces)")
    for name, role, role_zh in ACCOUNTS:
        password = secrets.token_urlsafe(9)
        added = hub("user", "add", "--name", name, "--role", role, "--by", "管理员", stdin=password + "\n")
        if added.returncode != 0:
            raise RuntimeError(f"user add {name}: {added.stderr.strip()}")
        print(f"   {role_zh} {role}: 用户名 user {name}  密码 password {password}")
    print("", flush=True)


def serve_console(config: Path, workdir: Path, env: dict[str, str], web_port: int) -> None:
    """`hall-hub web` on the demo's store, its clock standing at the day's end, until Ctrl-C."""
    spec = f"{end_of_day().isoformat()},speed=0"
    process = subprocess.Popen([sys.executable, "-m", "hub.cli", "web", "--config", str(config),
                                "--clock", spec], env=env, cwd=workdir)
    print(f"\n== 控制台继续服务 the console keeps serving http://127.0.0.1:{web_port}/ "
          "(the hall as it stood at 17:45); Ctrl-C to stop", flush=True)
    try:
        process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        process.wait(30)


def wait_ready(log: Path, process: subprocess.Popen[bytes], timeout: float = 180.0) -> None:
    """Until the process has logged its `ready:` line (the units open, the broker connected)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and " ready: " in log.read_text(encoding="utf-8", errors="replace"):
            return
        if process.poll() is not None:
            raise RuntimeError(f"{log.stem} exited with {process.returncode}; see {log}")
        time.sleep(0.1)
    raise RuntimeError(f"{log.stem} not ready after {timeout:.0f} s; see {log}")


def astronaut(workdir: Path) -> Path:
    """The astronaut photo that scikit-image ships, cropped to her face (the full picture has a second
    "face" on the suit's patch, and enrollment refuses photos with several faces)."""
    import cv2
    import skimage.data

    image = skimage.data.astronaut()[20:220, 130:310]
    path = workdir / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(cv2.resize(image, None, fx=1.6, fy=1.6), cv2.COLOR_RGB2BGR))
    return path


def invitation_ack(url: str, clock: ScaledClock, command_id: str,
                   timeout: float = 30.0) -> dict[str, Any] | None:
    """The box's ack of the hub's invitation, stored at the hub during the day (None: none came)."""
    store = Store(url, clock, create=False)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in store.events(type="ack", since=start_of_day()):
                if event.body.get("cmd") == command_id:
                    return event.body
            time.sleep(0.2)
        return None
    finally:
        store.close()


def play(step, reader: CardReaderSim, buses: dict[str, PolledBusSim],  # type: ignore[no-untyped-def]
         invite: Callable[[str], None], camera: CameraSim, face: Path) -> int:
    """Carry out one step; returns how many events it should store at the hub."""
    if step.action == "face":
        camera.blink(face, 4.0, blinks=2)
        camera.empty(1)
        return 1
    if step.action in ("tap", "hold"):
        reader.tap(step.target, hold_seconds=0.05 if step.action == "tap" else 0.4, interval=0.05)
        return 1
    if step.action == "noise":
        reader.noise(bytes.fromhex(step.target))
    elif step.action == "corrupt":
        reader.corrupt(step.target)
    elif step.action == "key":
        bus, addr = address(step.target, "desk")
        buses[bus].press(addr, step.value)
        return 0 if step.value == 0x18 else 1
    elif step.action == "rate":
        bus, addr = address(step.target, "evaluator")
        buses[bus].press(addr, step.value)
        return 1
    elif step.action == "send":
        invite(step.target)
    return 0


def manager_actions(hub, printer: PrinterSim) -> bool:  # type: ignore[no-untyped-def]
    """What the hall's manager does after the day, while the boxes still run: registers a citizen's
    written complaint and prints its receipt at the entrance, settles a staff member's appeal of the
    10:30 rating (found to be a mistaken press), and prints the month's notice for the board."""
    complaint = hub("complaints", "add", "--kind", "written", "--window", "03", "--staff", "S005",
                    "--by", "值班长 李主任", "--text", "办理社保转移等候时间过长",
                    "--contact", "138-0000-0000", "--print", "entrance:printer", "--wait", "30")
    print(f"\n== 投诉登记 a complaint\n{(complaint.stdout + complaint.stderr).rstrip()}", flush=True)
    listed = json.loads(hub("ratings", "--date", DAY, "--json").stdout or "{}").get("ratings", [])
    bad = [r["id"] for r in listed if r["window"] == "03" and r["level"] == 1]
    if not bad:
        print("  (no level-1 rating at window 03 to appeal)")
        return False
    appeal = hub("ratings", "appeal", "--rating", bad[0], "--by", "陈静",
                 "--reason", "群众误按非常不满意, 当场已说明")
    decided = hub("ratings", "decide", "--rating", bad[0], "--by", "办公室主任", "--accept",
                  "--note", "调阅录像核实为误按")
    print(f"\n== 评价申诉 an appeal\n{(appeal.stdout + appeal.stderr).rstrip()}\n"
          f"{(decided.stdout + decided.stderr).rstrip()}", flush=True)
    notice = hub("report", "month", "--month", DAY[:7], "--print", "entrance:printer", "--wait", "60")
    printed = printer.wait_receipts(2, 30)
    for title, receipt in zip(("投诉回执 the complaint receipt", "月度公示 the monthly notice"),
                              printer.receipts, strict=False):
        text = receipt.text(PRINTER_COLUMNS)
        print(f"\n== 小票 printed at the entrance: {title}\n{text.rstrip()}")
    print(f"  (receipts as text and PNG in {printer.out})")
    return printed and all(r.returncode == 0 for r in (complaint, appeal, decided, notice))


def report(hub, workdir: Path, acted: bool) -> int:  # type: ignore[no-untyped-def]
    at = f"{DAY}T17:45:00+08:00"
    sections = [
        ("考勤 attendance", ("attendance", "--date", DAY, "--at", at)),
        ("好差评 ratings", ("ratings", "--date", DAY)),
        ("离岗 away periods", ("away", "--date", DAY)),
        ("违规与告警 findings", ("findings", "--date", DAY)),
        ("差评整改 follow-up cases", ("cases", "list", "--from", DAY, "--to", DAY)),
        ("投诉 complaints", ("complaints", "list", "--from", DAY, "--to", DAY)),
        ("月度汇总 monthly report", ("report", "month", "--month", DAY[:7], "--out",
                                     str(workdir / "reports"))),
        ("日志校验 log verify", ("log", "verify")),
    ]
    ok = acted
    for title, args in sections:
        result = hub(*args)
        print(f"\n== {title}\n{(result.stdout + result.stderr).rstrip()}")
        ok = ok and result.returncode == 0
    scheduled = hub("log", "show", "--kind", "finding")
    print(f"\n== 调度器记入日志的发现 findings the scheduler logged: {len(scheduled.stdout.splitlines())}")
    return 0 if ok and verify_export(hub, workdir) else 1


def verify_export(hub, workdir: Path) -> bool:  # type: ignore[no-untyped-def]
    """The demo day exported as an inspector would take it away, and checked by `hall-verify` alone."""
    bundle = workdir / f"audit-{DAY}.zip"
    exported = hub("log", "export", "--from", DAY, "--to", DAY, "--out", str(bundle))
    print(f"\n== 日志导出 log export\n{(exported.stdout + exported.stderr).rstrip()}")
    verified = subprocess.run([sys.executable, "-m", "verifier.cli", str(bundle)], capture_output=True,
                              text=True, cwd=workdir, timeout=120)
    print(f"\n== 独立核验 hall-verify {bundle.name}\n{(verified.stdout + verified.stderr).rstrip()}")
    return exported.returncode == 0 and verified.returncode == 0


def main(workdir: str = "var/demo") -> int:
    return run(Path(workdir).resolve())


if __name__ == "__main__":
    sys.exit(main())
