"""The simulated hall of `hall-sim demo`: who works where, the configs, and what happens when.

Six windows, each with an evaluator and a desk box on two polled RS-485 buses (one window-box edge
agent), an entrance card reader (one entrance edge agent), ten staff.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from hub import config as hub_config
from hub.cli_broker import add_device
from wire.envelope import generate_keypair

DAY = "2026-11-24"  # a Tuesday


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    window: str
    card: str  # as written in the roster: hex, or the printed decimal number
    desk: str  # the desk box's id in sign events: the person's own, or the window's shared one


STAFF = [
    Person("S001", "张伟", "01", "0A004A7B2C", "d01"),
    Person("S002", "王芳", "01", "67003B51C6", "d01"),
    Person("S003", "李娜", "02", "0003909740", "d02"),  # the printed number of 67003BA86C
    Person("S004", "刘洋", "02", "1F00644BB6", "d02"),
    Person("S005", "陈静", "03", "2A00112233", "d03"),
    Person("S006", "杨磊", "03", "2A00445566", "d03"),
    Person("S007", "赵敏", "04", "2A00778899", "S007"),
    Person("S010", "吴霞", "04", "2A00102030", "S007"),  # on approved sick leave all day
    Person("S008", "黄强", "05", "2A00AABBCC", "S008"),
    Person("S009", "周杰", "06", "2A00DDEEFF", "S009"),  # never comes: window 06 is left unattended
]
READ = {"0003909740": "67003BA86C"}  # what the reader sends for a card the roster lists by number

# bus address -> (kind, window, desk id); bus1 serves windows 01-03, bus2 windows 04-06
BUSES = {
    "bus1": {1: ("evaluator", "01", ""), 2: ("desk", "01", "d01"), 3: ("evaluator", "02", ""),
             4: ("desk", "02", "d02"), 5: ("evaluator", "03", ""), 6: ("desk", "03", "d03")},
    "bus2": {1: ("evaluator", "04", ""), 2: ("desk", "04", "S007"), 3: ("evaluator", "05", ""),
             4: ("desk", "05", "S008"), 5: ("evaluator", "06", ""), 6: ("desk", "06", "S009")},
}


def address(window: str, kind: str) -> tuple[str, int]:
    for bus, devices in BUSES.items():
        for addr, (device_kind, device_window, _) in devices.items():
            if (device_kind, device_window) == (kind, window):
                return bus, addr
    raise KeyError(f"no {kind} at window {window}")


def hm(text: str) -> datetime:
    return datetime.fromisoformat(f"{DAY}T{text}:00+08:00")


@dataclass(frozen=True)
class Step:
    at: datetime
    action: str  # tap, hold, noise, corrupt, key, rate, send
    target: str  # card, window, or command
    value: int = 0
    note: str = ""


def _punches() -> list[Step]:
    arrive = {"S001": "08:16", "S002": "08:18", "S003": "08:21", "S004": "08:26", "S005": "08:28",
              "S006": "08:34", "S007": "08:44", "S008": "08:29"}
    leave_am = {"S001": "12:00", "S002": "12:01", "S003": "12:02", "S004": "12:03", "S005": "12:04",
                "S006": "12:05", "S007": "11:40", "S008": "12:06"}
    back_pm = {"S001": "FACE", "S002": "14:12", "S003": "14:14", "S004": "14:16", "S005": "14:18",
               "S006": "14:20", "S007": "14:22", "S008": "14:24"}
    leave_pm = {"S001": "17:30", "S002": "17:31", "S003": "17:32", "S004": "17:33", "S005": "17:34",
                "S006": "17:35", "S007": "17:36", "S008": "17:37"}
    notes = {("S006", "08:34"): "宽限内 within grace", ("S007", "08:44"): "迟到 late",
             ("S007", "11:40"): "早退 leaves early"}
    card = {p.id: READ.get(p.card, p.card) for p in STAFF}
    steps = []
    for table in (arrive, leave_am, back_pm, leave_pm):
        for staff, when in table.items():
            if when == "FACE":  # 张伟 comes back from lunch and clocks in by face
                steps.append(Step(hm("13:40"), "face", staff, note="人脸签到 clocks in by face (blinks)"))
                continue
            action = "hold" if (staff, when) == ("S003", "08:21") else "tap"
            note = notes.get((staff, when), "卡片放在读卡器上 card left on the reader" if action == "hold"
                             else "")
            steps.append(Step(hm(when), action, card[staff], note=note))
    steps.append(Step(hm("08:17"), "tap", card["S002"], note="一分钟内重复刷卡 double tap, counts once"))
    steps.append(Step(hm("08:19"), "noise", "4e4f495345ffff00", note="线路噪声 line noise"))
    steps.append(Step(hm("08:43"), "corrupt", card["S007"], note="坏帧 a corrupt read"))
    return steps


def _window_life() -> list[Step]:
    return [
        Step(hm("09:10"), "key", "01", 0x18, "01号窗口邀请评价 staff invites a rating"),
        Step(hm("09:12"), "rate", "01", 5, "非常满意, invited"),
        Step(hm("09:20"), "rate", "02", 4, "满意, not invited"),
        Step(hm("09:40"), "send", "04", 0, "hub sends an invitation with ticket A023"),
        Step(hm("09:42"), "rate", "04", 5, "invited by the hub"),
        Step(hm("10:00"), "key", "05", 0x11, "05号窗口 S008 暂离开会 (declared 45 min)"),
        Step(hm("10:20"), "rate", "05", 3, "nobody on duty: kept and flagged"),
        Step(hm("10:30"), "rate", "03", 1, "非常不满意: opens a follow-up case"),
        Step(hm("10:31"), "rate", "03", 1, "pressed again at once: misuse, kept"),
        Step(hm("11:10"), "key", "05", 0x10, "S008 returns 25 min late"),
        Step(hm("11:20"), "rate", "06", 4, "window 06: nobody there all day"),
        Step(hm("15:00"), "key", "02", 0x1F, "02号窗口暂停服务 pause service"),
        Step(hm("15:20"), "key", "02", 0x1F, "service resumed"),
        Step(hm("15:40"), "key", "03", 0x18, "invite"),
        Step(hm("15:41"), "rate", "03", 2, "不满意, invited: a second case"),
        Step(hm("16:00"), "rate", "01", 5, ""),
    ]


def script() -> list[Step]:
    return sorted(_punches() + _window_life(), key=lambda step: step.at)


def write_configs(workdir: Path, port: int, card_pty: str, bus_ptys: dict[str, str],
                  camera_url: str, web_port: int, printer_url: str, terminal_port: int) -> dict[str, Path]:
    hub_keys, entrance_keys, windows_keys = generate_keypair(), generate_keypair(), generate_keypair()
    roster = "".join(
        f'[[staff]]\nid = "{p.id}"\nname = "{p.name}"\nwindow = "{p.window}"\ncards = ["{p.card}"]\n\n'
        for p in STAFF
    )
    paths = {name: workdir / f"{name}.toml" for name in ("hub", "entrance", "windows")}
    paths["hub"].write_text(
        f'hall = "demo"\ntimezone = "Asia/Shanghai"\nprivate_key = "{hub_keys.private_hex}"\n\n'
        f'[broker]\nurl = "embedded"\nlisten = "127.0.0.1:{port}"\npasswd_file = "broker.passwd"\n\n'
        '[store]\nurl = "sqlite:///hub.db"\n\n[reports]\ndir = "reports"\n\n'
        '[complaints]\nphone = "0571-12345678"\n\n'
        f'[web]\nlisten = "127.0.0.1:{web_port}"\nprinters = ["entrance:printer"]\n\n'
        "[ratings]\ncount = \"all\"\nrepeat_seconds = 300\n\n"
        "[alerts]\ncheck_seconds = 2\ndaily_close = 17:40:00\n\n"
        f'[[devices]]\nid = "entrance"\nname = "大厅入口"\npublic_key = "{entrance_keys.public_hex}"\n\n'
        f'[[devices]]\nid = "windows"\nname = "窗口评价器与离岗牌"\n'
        f'public_key = "{windows_keys.public_hex}"\n\n'
        f"{roster}"
        "[schedule]\ngrace_minutes = 5\nabsent_after_minutes = 120\nduplicate_punch_minutes = 3\n"
        "require_leave_punch = true\n"
        'sessions = [{name = "上午", start = 08:30:00, end = 12:00:00},\n'
        '            {name = "下午", start = 14:30:00, end = 17:30:00}]\n',
        encoding="utf-8",
    )
    hub = hub_config.load(paths["hub"])  # each box's broker login, as `hall-hub broker add-device` makes it
    logins = {device: add_device(hub, device).secret for device in ("entrance", "windows")}

    def common(device: str) -> str:
        return (f'hall = "demo"\nhub_public_key = "{hub_keys.public_hex}"\n\n'
                f'[broker]\nurl = "mqtt://127.0.0.1:{port}"\nusername = "{device}"\n'
                f'password = "{logins[device]}"\n\n')

    paths["entrance"].write_text(
        f'device = "entrance"\nprivate_key = "{entrance_keys.private_hex}"\n{common("entrance")}'
        '[outbox]\npath = "entrance-outbox.db"\nresend_seconds = 5\n\n'
        f'[terminal]\nlisten = "127.0.0.1:{terminal_port}"\n\n'
        '[sound]\ndevice = "null"  # the clips are played, to no speaker (a hall box: "default")\n\n'
        f'[[units]]\nid = "door"\nkind = "card"\ndriver = "rdm6300"\nport = "{card_pty}"\n\n'
        f'[[units]]\nid = "camera"\nkind = "face"\nsource = "{camera_url}"\nrequire_live = true\n'
        "cooldown_seconds = 60\n\n"
        f'[[units]]\nid = "printer"\nkind = "printer"\ndriver = "escpos"\nconnection = "{printer_url}"\n'
        "columns = 48\n",
        encoding="utf-8",
    )
    buses = ""
    for bus, devices in BUSES.items():
        members = ",\n".join(
            f'  {{addr = {addr}, kind = "{kind}", window = "{window}"'
            + (f', desk = "{desk}"' if desk else "") + "}"
            for addr, (kind, window, desk) in devices.items()
        )
        buses += (f'[[units]]\nid = "{bus}"\nkind = "bus"\ndriver = "buttonbus"\n'
                  f'port = "{bus_ptys[bus]}"\ndevices = [\n{members}\n]\n\n')
    paths["windows"].write_text(
        f'device = "windows"\nprivate_key = "{windows_keys.private_hex}"\n{common("windows")}'
        '[outbox]\npath = "windows-outbox.db"\nresend_seconds = 5\n\n'
        "[window]\ninvite_seconds = 3\n"
        "away_minutes = {meeting = 45, errand = 30, break = 15, field = 120, other = 30}\n\n"
        f"{buses}",
        encoding="utf-8",
    )
    return paths


def end_of_day() -> datetime:
    return hm("17:45")


def start_of_day() -> datetime:
    return hm("08:10")
