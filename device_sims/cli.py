"""`hall-sim`: simulated hall devices on pseudo-terminals. One subcommand per device family."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

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

    demo = devices.add_parser("demo", help="a whole simulated hall morning: hub, edge agent, card reader")
    demo.add_argument("--workdir", default="var/demo", help="where the demo keeps its files")
    demo.set_defaults(run=_run_demo)
    return parser


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
