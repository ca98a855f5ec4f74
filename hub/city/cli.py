"""`hall-hub run|check --config city.toml`: a city worker, or the check of a city's config."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from hub.city.config import load_city
from wire import clock as clocks
from wire.configfile import ConfigError, example_key_warning


def city_command(args: argparse.Namespace) -> int:
    """`run` or `check` for a city config; other commands take a hall's own config."""
    if args.command not in ("run", "check"):
        print(f"错误 error: {args.config} is a city config ([[halls]]): `{args.command}` takes one "
              "hall's config (the file its [[halls]] entry includes)", file=sys.stderr)
        return 2
    try:
        city = load_city(args.config)
    except ConfigError as exc:
        print(exc.report(), file=sys.stderr)
        return 2
    if args.command == "check":
        for hall in city.halls:
            warning = example_key_warning(hall.private_key_hex(), "hall-hub")
            if warning:
                print(f"{hall.hall}: {warning}", file=sys.stderr)
        print(f"{args.config}: ok, city {city.city.name}: {len(city.halls)} hall(s) "
              f"({', '.join(hall.hall for hall in city.halls)})")
        return 0
    try:
        for hall in city.halls:  # a bad --clock is refused here, not in a hall's thread
            clocks.from_spec(args.clock, hall.timezone)
    except ValueError as exc:
        print(f"错误 error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s")
    from hub.city.worker import CityWorker

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    CityWorker(city, args.clock).run(stop)
    return 0
