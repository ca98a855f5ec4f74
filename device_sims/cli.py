"""`hall-sim`: simulated hall devices on pseudo-terminals. One subcommand per device family."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from device_sims import buttonbus
from device_sims.card import (
    At,
    CardReaderSim,
    HallClock,
    ScriptError,
    Step,
    Tap,
    Wait,
    card_data,
    parse_script,
)
from wire.clock import Clock, from_spec

if TYPE_CHECKING:
    from device_sims.camera import Step as CameraStep


class _HallClock:
    """Adapts a wire clock to HallClock: clocks without `wall_seconds_until` run at wall speed."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def now(self) -> datetime:
        return self._clock.now()

    def wall_seconds_until(self, moment: datetime) -> float:
        scaled = getattr(self._clock, "wall_seconds_until", None)
        if scaled is not None:
            return float(scaled(moment))
        return max(0.0, (moment - self._clock.now()).total_seconds())


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hall-sim", description="Simulated hall devices on pseudo-terminals."
    )
    devices = parser.add_subparsers(dest="device", required=True, metavar="DEVICE")

    card = devices.add_parser("card", help="RDM6300 / EM4100 card reader (PROTOCOL.md section 2)")
    source = card.add_mutually_exclusive_group(required=True)
    source.add_argument("--script", type=Path, help="script file: tap/noise/corrupt/wait/at, one per line")
    source.add_argument(
        "--tap",
        action="append",
        metavar="CARD",
        help="tap this card (10 hex digits or the 10-digit printed number); repeatable",
    )
    card.add_argument("--hold", type=_seconds, default=0.3, help="seconds a card is held (default 0.3)")
    card.add_argument("--gap", type=_seconds, default=1.5, help="seconds between --tap cards (default 1.5)")
    card.add_argument("--clock", help="hall clock spec START,speed=N,anchor=EPOCH (for `at` steps)")
    card.add_argument("--timezone", help="hall time zone, e.g. Asia/Shanghai (needed by `at` steps)")
    card.add_argument(
        "--start-delay", type=_seconds, default=1.0, help="seconds to wait for the agent to open the pty"
    )
    card.add_argument("--linger", type=_seconds, default=2.0, help="seconds to keep the pty open at the end")
    card.set_defaults(run=_run_card)

    for name, kind, what in (("evaluator", 1, "satisfaction evaluator"), ("desk", 2, "desk box, away sign")):
        box = devices.add_parser(name, help=f"ButtonBus {what} alone on a port (PROTOCOL.md section 3)")
        box.add_argument("--addr", type=_byte, default=1, help="bus address (default 1)")
        box.add_argument("--keys", type=_byte, help="keys in its HELLO (default 5 evaluator, 7 desk)")
        _add_button_play_args(box, "KEY", _byte, "press this key code (e.g. 5 or 0x10); repeatable")
        box.set_defaults(run=_run_button_box, kind=kind)

    bus = devices.add_parser("bus", help="several ButtonBus devices on one polled RS-485 port")
    bus.add_argument(
        "--device",
        action="append",
        required=True,
        type=_bus_device,
        metavar="ADDR:KIND[:KEYS]",
        help="a device on the bus, KIND evaluator or desk (e.g. 1:evaluator, 2:desk:7); repeatable",
    )
    _add_button_play_args(bus, "ADDR:KEY", _bus_press, "press KEY on the device at ADDR; repeatable")
    bus.set_defaults(run=_run_bus)

    _add_camera_parser(devices)
    _add_printer_parser(devices)

    demo = devices.add_parser("demo", help="a whole simulated hall morning: hub, edge agent, card reader")
    demo.add_argument("--workdir", default="var/demo", help="where the demo keeps its files")
    demo.set_defaults(run=_run_demo)
    return parser


def _add_camera_parser(devices: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cam = devices.add_parser("camera", help="IP camera: MJPEG over HTTP on 127.0.0.1 (prints its URL)")
    cam.add_argument("--port", type=int, default=0, help="TCP port (default 0: a free one)")
    cam.add_argument("--fps", type=float, default=15.0, help="frames per second (default 15)")
    cam.add_argument("--size", type=_frame_size, default=(640, 360), help="frame size WxH (default 640x360)")
    source = cam.add_mutually_exclusive_group(required=True)
    source.add_argument("--script", type=Path, help="script file: empty/photo/video/blink/moved/vanish/wait")
    source.add_argument("--photo", type=Path, help="show this photo")
    source.add_argument("--video", type=Path, help="play this video file")
    source.add_argument("--blink", type=Path, help="show this photo blinking once")
    cam.add_argument("--seconds", type=_seconds, default=5.0, help="seconds for --photo/--blink (default 5)")
    cam.add_argument(
        "--start-delay", type=_seconds, default=1.0, help="seconds of empty scene before playing (default 1)"
    )
    cam.add_argument("--loop", action="store_true", help="play again and again until interrupted")
    cam.set_defaults(run=_run_camera)


def _add_printer_parser(devices: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    printer = devices.add_parser("printer", help="ESC/POS receipt printer on a TCP port of 127.0.0.1 "
                                                 "(prints READY tcp://127.0.0.1:PORT)")
    printer.add_argument("--port", type=int, default=9100, help="TCP port (default 9100; 0: a free one)")
    printer.add_argument("--columns", type=int, choices=[32, 42, 48], default=48,
                         help="characters per line: 32 for 58 mm paper, 48 for 80 mm (default)")
    printer.add_argument("--paper-out-after", type=int, metavar="N",
                         help="the paper runs out after N receipts")
    printer.add_argument("--script", type=Path, help="timed steps: SECONDS paper_out|paper_in|paper_low|"
                                                     "paper_ok|cover_open|cover_close|offline|online|drop")
    printer.add_argument("--out", type=Path, default=Path("var/printer"),
                         help="where receipts are written as receipt-NNN.txt and .png (default var/printer)")
    printer.set_defaults(run=_run_printer)


def _run_printer(args: argparse.Namespace) -> int:
    import signal
    import threading

    from device_sims.printer import PrinterScriptError, PrinterSim, parse_printer_script

    try:
        steps = parse_printer_script(args.script.read_text(encoding="utf-8")) if args.script else []
    except (OSError, PrinterScriptError) as exc:
        raise ScriptError(f"--script: {exc}") from exc
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with PrinterSim(args.out, args.port, args.columns, args.paper_out_after) as sim:
        print(f"READY {sim.url}", flush=True)
        try:
            sim.play(steps, stop)
            while not stop.wait(1.0):
                pass
        finally:
            print(f"hall-sim printer: {len(sim.receipts)} receipt(s) in {args.out}, {sim.unknown} unknown "
                  f"command(s), {sim.lost_bytes} byte(s) lost without paper", file=sys.stderr)
    return 0


def _frame_size(text: str) -> tuple[int, int]:
    width, x, height = text.lower().partition("x")
    if not (x and width.isdigit() and height.isdigit() and int(width) >= 16 and int(height) >= 16):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT of at least 16x16, got {text!r}")
    return int(width), int(height)


def _camera_steps(args: argparse.Namespace) -> list[CameraStep]:
    from device_sims import camera  # dlib and OpenCV load only for this subcommand

    if args.script is not None:
        try:
            text = args.script.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScriptError(f"{args.script}: {exc.strerror or exc}") from exc
        try:
            return camera.parse_script(text, base=args.script.parent)
        except ScriptError as exc:
            raise ScriptError(f"{args.script}: {exc}") from exc
    for flag in ("photo", "video", "blink"):
        path = getattr(args, flag)
        if path is not None and not path.is_file():
            raise ScriptError(f"--{flag}: no such file: {path}")
    if args.photo is not None:
        return [camera.Photo(args.photo, args.seconds)]
    if args.blink is not None:
        return [camera.Blink(args.blink, args.seconds)]
    return [camera.Video(args.video)]


def _run_camera(args: argparse.Namespace) -> int:
    from device_sims import camera

    steps = _camera_steps(args)
    try:
        with camera.CameraSim(size=args.size, fps=args.fps, port=args.port) as sim:
            print(f"URL {sim.url}", flush=True)
            sim.empty(args.start_delay)
            while True:
                sim.play(steps)
                sim.wait_idle()
                if sim.failure is not None:
                    raise sim.failure
                if not args.loop:
                    return 0
    except camera.CameraError as exc:
        raise ScriptError(str(exc)) from exc


def _byte(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        value = -1
    if not 0 <= value <= 255:
        raise argparse.ArgumentTypeError(f"expected a number 0..255 (or 0x..), got {text!r}")
    return value


def _bus_device(text: str) -> buttonbus.ButtonBox:
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError(f"expected ADDR:KIND[:KEYS], got {text!r}")
    kind = buttonbus.KINDS.get(parts[1].lower())
    if kind is None:
        raise argparse.ArgumentTypeError(f"{text!r}: KIND is one of {', '.join(buttonbus.KINDS)}")
    return buttonbus.ButtonBox(_byte(parts[0]), kind, _byte(parts[2]) if len(parts) == 3 else None)


def _bus_press(text: str) -> tuple[int, int]:
    addr, colon, key = text.partition(":")
    if not colon:
        raise argparse.ArgumentTypeError(f"expected ADDR:KEY, got {text!r}")
    return _byte(addr), _byte(key)


def _add_button_play_args(
    sub: argparse.ArgumentParser, metavar: str, press_type: Callable[[str], object], press_help: str
) -> None:
    source = sub.add_mutually_exclusive_group()
    source.add_argument("--script", type=Path, help="script file: press/noise/corrupt/wait/at, one per line")
    source.add_argument("--press", action="append", metavar=metavar, type=press_type, help=press_help)
    sub.add_argument("--gap", type=_seconds, default=1.0, help="seconds between --press keys (default 1)")
    sub.add_argument("--clock", help="hall clock spec START,speed=N,anchor=EPOCH (for `at` steps)")
    sub.add_argument("--timezone", help="hall time zone, e.g. Asia/Shanghai (needed by `at` steps)")
    sub.add_argument(
        "--start-delay", type=_seconds, default=1.0, help="seconds to wait for the agent to open the pty"
    )
    sub.add_argument("--linger", type=_seconds, default=2.0, help="seconds to keep the pty open at the end")


def _button_script(args: argparse.Namespace, addresses: set[int], need_addr: bool) -> list[buttonbus.Step]:
    if args.script is not None:
        try:
            text = args.script.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScriptError(f"{args.script}: {exc.strerror or exc}") from exc
        try:
            return buttonbus.parse_script(text, addresses, need_addr)
        except ScriptError as exc:
            raise ScriptError(f"{args.script}: {exc}") from exc
    steps: list[buttonbus.Step] = []
    for index, press in enumerate(args.press or []):
        addr, key = press if isinstance(press, tuple) else (None, press)
        if addr is not None and addr not in addresses:
            raise ScriptError(f"--press {addr}:{key}: no --device at address {addr}")
        if index:
            steps.append(Wait(args.gap))
        steps.append(buttonbus.Press(addr, key))
    return steps


def _play_buttons(args: argparse.Namespace, sim: buttonbus.PointToPointSim | buttonbus.PolledBusSim,
                  steps: list[buttonbus.Step]) -> int:
    clock = _card_clock(args, [step for step in steps if isinstance(step, At)])
    print(f"PTY {sim.path}", flush=True)
    time.sleep(args.start_delay)
    sim.play(steps, clock)
    time.sleep(args.linger)
    for addr, box in sorted(sim.boxes.items()):
        for mode, text in box.shown:
            print(json.dumps({"addr": addr, "mode": mode, "text": text}, ensure_ascii=False), flush=True)
        if box.unacknowledged or box.keys_lost:
            print(f"hall-sim {args.device}: address {addr}: {box.unacknowledged + box.keys_lost} key "
                  "press(es) never acknowledged", file=sys.stderr)
    return 0


def _run_button_box(args: argparse.Namespace) -> int:
    steps = _button_script(args, {args.addr}, need_addr=False)
    with buttonbus.PointToPointSim(buttonbus.ButtonBox(args.addr, args.kind, args.keys)) as sim:
        return _play_buttons(args, sim, steps)


def _run_bus(args: argparse.Namespace) -> int:
    addresses = [box.addr for box in args.device]
    if len(set(addresses)) != len(addresses):
        raise ScriptError(f"--device: an address appears twice in {addresses}")
    steps = _button_script(args, set(addresses), need_addr=True)
    with buttonbus.PolledBusSim(args.device) as sim:
        return _play_buttons(args, sim, steps)


def _run_demo(args: argparse.Namespace) -> int:
    from device_sims import demo

    return demo.main(args.workdir)


def _card_script(args: argparse.Namespace) -> list[Step]:
    if args.script is not None:
        try:
            text = args.script.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScriptError(f"{args.script}: {exc.strerror or exc}") from exc
        try:
            return parse_script(text, default_hold=args.hold)
        except ScriptError as exc:
            raise ScriptError(f"{args.script}: {exc}") from exc
    steps: list[Step] = []
    for index, card in enumerate(args.tap):
        if index:
            steps.append(Wait(args.gap))
        try:
            steps.append(Tap(card_data(card), args.hold))
        except ValueError as exc:
            raise ScriptError(f"--tap: {exc}") from exc
    return steps


def _card_clock(args: argparse.Namespace, steps: Sequence[Step]) -> HallClock | None:
    if args.timezone is None:
        if args.clock is not None:
            raise ScriptError("--clock needs --timezone")
        if any(isinstance(step, At) for step in steps):
            raise ScriptError("the script has `at` steps: give --timezone (and --clock for a simulated day)")
        return None
    try:
        return _HallClock(from_spec(args.clock, args.timezone))
    except (ValueError, LookupError) as exc:
        raise ScriptError(f"--clock/--timezone: {exc}") from exc


def _run_card(args: argparse.Namespace) -> int:
    steps = _card_script(args)
    clock = _card_clock(args, steps)
    with CardReaderSim() as sim:
        print(f"PTY {sim.path}", flush=True)
        time.sleep(args.start_delay)
        sim.play(steps, clock)
        time.sleep(args.linger)
        if sim.dropped_bytes:
            print(f"hall-sim card: {sim.dropped_bytes} byte(s) dropped, nobody read the pty", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except ScriptError as exc:
        print(f"hall-sim {args.device}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
