"""`hall-edge`: run the edge agent, check its config, make key pairs."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from edge_agent import config as edge_config
from wire import clock as clocks
from wire.configfile import ConfigError
from wire.envelope import generate_keypair


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hall-edge", description="大厅边缘代理 hall edge agent")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the agent (SIGTERM stops it cleanly)")
    run.add_argument("--config", required=True, help="TOML config file")
    run.add_argument("--clock", help="simulated clock: START,speed=N,anchor=EPOCH (demo and tests)")
    run.add_argument("--log-level", default="INFO")
    check = sub.add_parser("check", help="validate a config file and exit")
    check.add_argument("--config", required=True)
    sub.add_parser("keygen", help="print a new Ed25519 key pair (private, then public)")
    args = parser.parse_args(argv)

    if args.command == "keygen":
        pair = generate_keypair()
        print(f"private_key = \"{pair.private_hex}\"")
        print(f"public_key = \"{pair.public_hex}\"")
        return 0
    try:
        config = edge_config.load(args.config)
    except ConfigError as exc:
        print(f"配置错误 config error:\n{exc}", file=sys.stderr)
        return 2
    if args.command == "check":
        print(f"{args.config}: ok ({len(config.units)} unit(s))")
        return 0

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s",
    )
    from edge_agent.agent import EdgeAgent  # imported here so `check` and `keygen` stay light

    agent = EdgeAgent(config, clocks.from_spec(args.clock, config.timezone))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    agent.run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
