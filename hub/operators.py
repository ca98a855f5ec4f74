"""`hall-hub operator keygen` and `hall-hub roster apply`, and how a manual command names its author
(`--by`, the OS user and host) and signs with an operator's key (`--sign-with FILE`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hub.config import HubConfig
from hub.provenance import OperatorKeyError, Provenance, cli_author, read_operator_key, write_operator_key
from hub.roster_log import apply_roster, content, logged_roster
from hub.store.store import Store
from wire.provenance import key_id, operators_of

Handler = Callable[[argparse.Namespace, HubConfig, Store], int]


def signing(parser: argparse.ArgumentParser, by_help: str | None = None) -> argparse.ArgumentParser:
    """`--sign-with FILE` on a manual command; with `by_help`, also its required `--by NAME`."""
    if by_help is not None:
        parser.add_argument("--by", required=True, help=by_help)
    parser.add_argument("--sign-with", type=Path, metavar="FILE",
                        help="签名 sign the log entry with this operator key (`hall-hub operator keygen`); "
                             "its operator must be the --by name and in force in the log's roster")
    return parser


def add_commands(sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
                 ) -> dict[str, Handler]:
    operator = sub.add_parser("operator", help="操作员密钥 operator keys that sign manual entries")
    operator_sub = operator.add_subparsers(dest="operator_command", required=True)
    keygen = operator_sub.add_parser("keygen", help="write a new operator key (mode 0600), print the "
                                                    "public key")
    keygen.add_argument("--out", required=True, type=Path, help="the new key file")
    keygen.add_argument("--name", required=True, help="the operator's name, as given to --by")
    roster = sub.add_parser("roster", help="名册 log hub.toml's roster and settings")
    roster_sub = roster.add_subparsers(dest="roster_command", required=True)
    signing(with_config(roster_sub.add_parser(
        "apply", help="log the roster in hub.toml (staff, windows, devices, schedule, settings, operators) "
                      "when it differs from the last logged; `hall-hub run` refuses to start until then")),
        "who changed the roster")
    return {"roster": _roster}


def keygen(args: argparse.Namespace) -> int:
    try:
        made = write_operator_key(args.out, args.name)
    except OperatorKeyError as exc:
        print(f"错误 error: {exc}", file=sys.stderr)
        return 2
    print(f"操作员密钥已写入 operator key of {made.name} written to {args.out} (mode 0600); list the public "
          "key in hub.toml and log it with `hall-hub roster apply`:", file=sys.stderr)
    print(f"[[operators]]\nname = \"{made.name}\"\npublic_key = \"{made.public_hex}\"")
    return 0


def command_provenance(args: argparse.Namespace, store: Store) -> Provenance | None:
    """Who a manual command's entries are by: `--by`, and the operator key of `--sign-with`, which
    must be the --by operator's and in force (listed in the last logged roster). None for a command
    that names nobody (it writes no manual entry)."""
    by, key_file = getattr(args, "by", None), getattr(args, "sign_with", None)
    if not by and key_file is None:
        return None
    author = cli_author(by or "")
    if key_file is None:
        return Provenance(author)
    signer = read_operator_key(key_file)
    if signer.name != author.by:
        raise ValueError(f"--sign-with {key_file} holds the key of {signer.name!r}, "
                         f"not of --by {author.by!r}")
    last = logged_roster(store)
    in_force = operators_of(content(last.data)) if last is not None else {}
    if key_id(signer.public_hex) not in in_force:
        raise ValueError(f"操作员密钥未生效 the key of {signer.name} is not in force: list it in hub.toml's "
                         "[[operators]] and log it with `hall-hub roster apply` (signed by another operator, "
                         "or unsigned) first")
    return Provenance(author, signer)


def _roster(args: argparse.Namespace, config: HubConfig, store: Store) -> int:
    entry, changed = apply_roster(config, store)
    if entry is None:
        print("名册未变 the roster in hub.toml is the one in the log already: nothing logged")
        return 0
    signed = " (签名 signed)" if "signature" in entry.data else ""
    print(f"名册已记录 roster logged as entry #{entry.seq}{signed}: {'; '.join(changed)}")
    return 0
