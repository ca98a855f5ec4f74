"""`hall-hub run|check|web|user --config city.toml`: a city worker, the check of a city's config, the
city console (hub/web/city_app.py) and its users (kept in the `[city] store`). A hall's commands
given a city config run on the hall `--hall` names (hub/cli.py `main`, hub/city/config.py
`load_hall`)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from hub.city.config import CityConfig, load_city
from hub.store.store import Store
from wire import clock as clocks
from wire.configfile import ConfigError, example_key_warning

CITY_COMMANDS = ("run", "check", "web", "user")  # the city's own; every other command is a hall's (--hall)


def city_command(args: argparse.Namespace) -> int:
    """`run`, `check`, `web` or `user` for a city config; any other command given a city config
    without `--hall` is refused, naming the halls to choose from."""
    hall_command = args.command not in CITY_COMMANDS
    if not hall_command and args.hall is not None:
        hint = " (a city user's halls: --halls)" if args.command == "user" else ""
        print(f"错误 error: --hall {args.hall}: `{command_name(args)}` is for the whole city of "
              f"{args.config}; --hall picks the hall of a hall's command (attendance, log, ...){hint}",
              file=sys.stderr)
        return 2
    try:
        city = load_city(args.config, read_keys=not hall_command)
    except ConfigError as exc:
        print(exc.report(), file=sys.stderr)
        return 2
    if hall_command:
        print(f"错误 error: {args.config} is a city config ([[halls]]): `{command_name(args)}` runs on "
              f"one hall: add --hall HALL (its halls: {', '.join(hall.hall for hall in city.halls)})",
              file=sys.stderr)
        return 2
    if args.command in ("web", "user"):
        try:
            return _console_command(args, city)
        except ValueError as exc:
            print(f"错误 error: {exc}", file=sys.stderr)
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


def command_name(args: argparse.Namespace) -> str:
    """The command as typed: `log verify`, `attendance`."""
    subcommands = [value for key, value in vars(args).items()
                   if key.endswith("_command") and isinstance(value, str)]
    return " ".join([args.command, *subcommands])


def _console_command(args: argparse.Namespace, city: CityConfig) -> int:
    """`user ...` on the city's store (its users see the halls of `--halls`, default all), or `web`:
    the city console on `--listen` or `[city.web] listen`, each hall's store read on its own pool."""
    from hub import operators
    from hub.cli_users import user_command

    clock = clocks.from_spec(args.clock, city.halls[0].timezone)
    creates = args.command == "web" or args.user_command == "add"
    accounts = Store(city.city.store, clock, create=creates)
    try:
        if args.command == "user":
            provenance = operators.command_provenance(args, accounts)
            store = accounts if provenance is None else accounts.authored(provenance)
            halls = _halls(args.halls, city) if getattr(args, "halls", None) else None
            if getattr(args, "role", None) == "staff" and (halls is None or len(halls) != 1):
                raise ValueError("a city's staff account needs --halls with its one hall (roster ids "
                                 "are a hall's own)")
            chosen = [hall for hall in city.halls if halls is None or hall.hall in halls]
            return user_command(args, {m.id for hall in chosen for m in hall.staff}, store, halls)
        return _serve(args, city, accounts)
    finally:
        accounts.close()


def _halls(text: str, city: CityConfig) -> list[str]:
    halls = [hall.strip() for hall in text.split(",")]
    known = [hall.hall for hall in city.halls]
    unknown = [hall for hall in halls if hall not in known]
    if unknown:
        raise ValueError(f"--halls: {', '.join(unknown)} not in {city.path} (its halls: {', '.join(known)})")
    return halls


def _serve(args: argparse.Namespace, city: CityConfig, accounts: Store) -> int:
    from hub.cli_users import listening, serve_until_signalled
    from hub.web.city_app import create_city_app
    from hub.web.serve import WebServer

    web = listening(city.city.web, args.listen)
    if not web.listen:
        raise ValueError(f"{args.config}: give --listen HOST:PORT or [city.web] listen")
    stores = {hall.hall: Store(hall.store.url, clocks.from_spec(args.clock, hall.timezone), create=False,
                               device_keys=hall.device_keys()) for hall in city.halls}
    try:
        serve_until_signalled(WebServer(web, create_city_app(city, accounts, stores)))
    finally:
        for store in stores.values():
            store.close()
    return 0
