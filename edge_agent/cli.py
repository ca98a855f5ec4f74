"""`hall-edge`: run the edge agent, check its config, make key pairs."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from edge_agent import config as edge_config
from wire import clock as clocks
from wire import keyfile
from wire.configfile import ConfigError, example_key_warning
from wire.envelope import load_private_key, public_hex_of


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hall-edge", description="大厅边缘代理 hall edge agent")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the agent (SIGTERM stops it cleanly)")
    run.add_argument("--config", required=True, help="TOML config file")
    run.add_argument("--clock", help="simulated clock: START,speed=N,anchor=EPOCH (demo and tests)")
    run.add_argument("--log-level", default="INFO")
    check = sub.add_parser("check", help="validate a config file and exit")
    check.add_argument("--config", required=True)
    keygen = sub.add_parser("keygen", help="make an Ed25519 key pair (without --out: print both keys)")
    keygen.add_argument("--out", type=Path, help="write the private key to this new file (mode 0600) "
                                                 "and print the public key")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code = _command(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _command(args: argparse.Namespace) -> int:
    if args.command == "keygen":
        return keyfile.keygen(args.out)
    try:
        config = edge_config.load(args.config)
    except ConfigError as exc:
        print(exc.report(), file=sys.stderr)
        return 2
    if args.command == "check":
        warning = example_key_warning(config.private_key_hex(), "hall-edge")
        if warning:
            print(warning, file=sys.stderr)
        public = public_hex_of(load_private_key(config.private_key_hex()))
        print(f"{args.config}: ok ({len(config.units)} unit(s)); 公钥 public key {public}")
        return 0
    return _run(args, config)


def _run(args: argparse.Namespace, config: edge_config.EdgeConfig) -> int:
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
